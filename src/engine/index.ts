/**
 * The wasm engine's host-neutral entry point: load a GGUF from a stream (an R2
 * object body, a fetch body) into WASM memory. No node: imports here — the
 * Worker imports this with the kernel builds wrangler bundled as
 * `WebAssembly.Module`s (workerd cannot compile wasm from bytes). Node loads
 * files through ./node.ts.
 */
import { readGGUFStream, type GGUFHeader } from "../gguf/reader";
import type { ManifestCheck } from "../gguf/manifest";
import type { TensorInfo } from "../gguf/types";
import type { StableLMConfig } from "../model/config";
import { configFromGGUF } from "../model/config";
import { Arena, MAX_PAGES } from "./arena";
import { loadKernels, type BuildKind, type KernelModules, type Kernels } from "./kernels";
import { ALIGN, engineLayout, type EngineLayout, type PartOptions, type ThreadOptions, type WasmEngineOptions } from "./layout";
import { planModel, type Placement } from "./load";
import { WasmEngine } from "./wasm-engine";

export { WasmEngine } from "./wasm-engine";
export { engineLayout, type EngineLayout, type LayoutOptions, type PartOptions, type ThreadOptions, type WasmEngineOptions } from "./layout";
export { ThreadError, ThreadPool, type ThreadHandle } from "./thread-pool";
export { KVBudgetError, SequenceEvictedError, WasmSequence } from "./kv-cache";

export interface KernelChoice {
  /** Candidate kernel builds; the fastest that passes the self-test is used. */
  modules?: KernelModules;
  /** Or exactly this build. */
  module?: WebAssembly.Module;
  /** Why a build is missing, folded into the reported reason. */
  unavailable?: Partial<Record<BuildKind, string>>;
  /** Restrict the choice (EDGELM_KERNELS, the Worker's KERNELS, tests); falls back to scalar if the build fails its self-test. */
  force?: BuildKind;
  /** Among the builds that pass the self-test: the fastest on a timed probe (default) or the first in preference order (workerd, whose clock cannot time one). */
  choose?: "timed" | "first";
  /** Kernel warm-up calls before use (default true; see kernels.ts). */
  warmup?: boolean;
  /** The modules are the shared-memory builds: the memory is made shared, for more threads to work in. */
  shared?: boolean;
}

export interface StreamLoadOptions extends KernelChoice, WasmEngineOptions {
  /** Total bytes of the stream, if known (bounds checks before reading). */
  size?: number;
  onProgress?: (bytesRead: number, total: number) => void;
  /** Called once with the parsed header (hosts build the tokenizer from its metadata). */
  onHeader?: (header: GGUFHeader) => void;
  /** Check the bytes against the file's manifest as they arrive, each tensor before it is repacked. */
  verify?: ManifestCheck;
}

/** A fresh memory (up to the 4 GiB wasm32 limit, committed only as touched) with the kernels in it. */
export function newKernels(choice: KernelChoice): { kernels: Kernels; arena: Arena } {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: choice.shared ?? false });
  const kernels = loadKernels({ memory, modules: choice.modules, module: choice.module, unavailable: choice.unavailable, force: choice.force, choose: choice.choose, warmup: choice.warmup });
  return { kernels, arena: new Arena(memory, kernels.heapBase) };
}

export interface PlacedEngine {
  engine: WasmEngine;
  /** Where each tensor's bytes go, by name. */
  placements: Map<string, Placement>;
  layout: EngineLayout;
}

/**
 * Lays the engine out for this build and takes its memory from `arena` in one
 * allocation, before a byte of tensor data is read: weights, buffers and KV
 * pool (so a model that does not fit fails at once, and memory never grows —
 * or detaches views — while tensors stream in). A shard passes `opts` that
 * place only its part.
 */
export function placeEngine(
  config: StableLMConfig,
  tensors: ReadonlyMap<string, TensorInfo>,
  kernels: Kernels,
  arena: Arena,
  opts: WasmEngineOptions & PartOptions & ThreadOptions,
): PlacedEngine {
  const layout = engineLayout(config, tensors, { ...opts, build: kernels.kind });
  const end = Math.ceil(arena.top / ALIGN) * ALIGN + layout.total;
  if (end > 2 ** 32) {
    const { blocks, blockPositions } = layout.kv.layout;
    throw new RangeError(
      `the KV cache (${blocks} blocks of ${blockPositions} positions, ${(layout.kvBytes / 2 ** 20).toFixed(0)} MiB) does not fit in the 4 GiB of wasm32 memory beside ${((end - layout.kvBytes) / 2 ** 20).toFixed(0)} MiB of weights and buffers; lower the KV budget (kvBudgetMB, or sequences × contextLength)`,
    );
  }
  const base = arena.alloc(layout.total, ALIGN);
  const { weights, placements } = planModel(layout, base, kernels);
  return { engine: new WasmEngine(config, kernels, weights, layout, base), placements, layout };
}

/** The whole model of a GGUF header, in a fresh memory: the engine and where each tensor's bytes go. */
export function prepareEngine(header: Pick<GGUFHeader, "metadata" | "tensorByName">, choice: KernelChoice, opts: WasmEngineOptions & ThreadOptions): PlacedEngine {
  const config = configFromGGUF(header.metadata, header.tensorByName);
  const { kernels, arena } = newKernels(choice);
  return placeEngine(config, header.tensorByName, kernels, arena, opts);
}

/** Loads a GGUF from a stream in one pass: each tensor is written straight into WASM memory, then repacked there. */
export async function loadWasmEngineFromStream(stream: ReadableStream<Uint8Array>, opts: StreamLoadOptions): Promise<WasmEngine> {
  let prepared: ReturnType<typeof prepareEngine> | undefined;
  let pending: (() => void) | undefined;
  const seen = new Set<string>();
  const place = (info: TensorInfo, header: GGUFHeader): Uint8Array | undefined => {
    pending?.(); // the previous tensor has fully arrived: repack/convert it while it is in cache
    pending = undefined;
    if (!prepared) {
      opts.onHeader?.(header);
      prepared = prepareEngine(header, opts, opts);
    }
    const p = prepared.placements.get(info.name);
    if (!p) return undefined;
    seen.add(info.name);
    pending = p.finalize;
    return p.dest();
  };
  await readGGUFStream(stream, place, { size: opts.size, onProgress: opts.onProgress, verify: opts.verify });
  pending?.();
  if (!prepared) throw new Error("the GGUF has no tensors");
  for (const name of prepared.placements.keys()) if (!seen.has(name)) throw new Error(`tensor ${name} was not read`);
  return prepared.engine;
}
