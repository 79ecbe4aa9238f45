/**
 * Node entry point of the wasm engine: a GGUF file → WASM memory. Tensors are
 * read in file order straight into their final place in WASM memory (one
 * positioned read each, no JS-heap copy) and repacked there right after.
 */
import { openGGUF } from "../gguf/file";
import { prepareEngine, type KernelChoice } from "./index";
import { compileKernelModules, enableRelaxedSimd } from "./kernels-node";
import type { WasmEngine, WasmEngineOptions } from "./wasm-engine";

export interface FileLoadOptions extends WasmEngineOptions, Pick<KernelChoice, "force" | "warmup"> {
  /** Try the relaxed-SIMD build (turns on V8's flag at run time; default true unless EDGELM_RELAXED_SIMD=0). */
  relaxed?: boolean;
  /** Folder of the kernel builds (default build/). */
  buildDir?: string;
  onProgress?: (bytesRead: number, total: number) => void;
}

export async function loadWasmEngine(path: string, opts: FileLoadOptions = {}): Promise<WasmEngine> {
  const wantRelaxed = opts.relaxed ?? process.env.EDGELM_RELAXED_SIMD !== "0";
  let relaxedNote: string | undefined;
  if (wantRelaxed && !enableRelaxedSimd()) relaxedNote = "this runtime cannot enable relaxed SIMD";
  const { modules, unavailable } = compileKernelModules(opts.buildDir);
  if (!wantRelaxed) {
    delete modules.relaxed;
    unavailable.relaxed = opts.relaxed === false ? "disabled by the caller" : "disabled by EDGELM_RELAXED_SIMD=0";
  } else if (relaxedNote && !modules.relaxed) unavailable.relaxed = `${relaxedNote}: ${unavailable.relaxed ?? ""}`;

  const file = await openGGUF(path);
  try {
    const { engine, plan } = prepareEngine(file, { modules, unavailable, force: opts.force, warmup: opts.warmup }, opts);
    const order = [...plan.placements.values()].sort((a, b) => a.info.offset - b.info.offset);
    for (const p of order) {
      await file.readTensor(p.info, p.dest());
      p.finalize();
      opts.onProgress?.(file.dataOffset + p.info.offset + p.info.byteLength, file.totalSize);
    }
    return engine;
  } finally {
    await file.close();
  }
}
