/**
 * Weights stream → engine, inside workerd. The one place that knows which engines exist in the
 * Worker bundle. Only Worker-safe modules are imported here (src/model/load.ts pulls node:fs in
 * through its file loader, so the stream path is assembled from its parts instead).
 *
 * Hook for the WASM SIMD engine (src/engine/): workerd refuses to compile wasm from bytes, so its
 * kernels must be imported as a module (`import kernels from "../../build/kernels.wasm"`, which
 * wrangler's bundler turns into a WebAssembly.Module) and instantiated with
 * `new WebAssembly.Instance(kernels, imports)`. Add that import and a `case "wasm"` below that
 * streams the tensors straight into the engine's memory (readGGUFStream's `place` callback can
 * return a view of WASM memory, so there is no second copy in the JS heap).
 */
import type { GenerationEngine } from "../generate/generator";
import { readGGUFStream } from "../gguf/reader";
import type { Metadata } from "../gguf/types";
import { configFromGGUF } from "../model/config";
import { referenceEngine } from "../model/engine";
import { ReferenceModel } from "../model/reference";
import { loadWeights } from "../model/weights";
import type { EngineName } from "./env";

export interface LoadOptions {
  /** Total bytes of the stream, for progress (the GGUF header's own size is used when unknown). */
  size?: number;
  onProgress?: (bytesRead: number, total: number) => void;
}

export interface LoadedEngine {
  engine: GenerationEngine;
  /** The GGUF's key/values: the tokenizer and chat template are built from them. */
  metadata: Metadata;
}

export async function loadEngineFromStream(name: EngineName, stream: ReadableStream<Uint8Array>, opts: LoadOptions = {}): Promise<LoadedEngine> {
  switch (name) {
    case "ref":
      return loadReference(stream, opts);
    case "wasm":
      await stream.cancel().catch(() => {});
      throw new Error(
        'ENGINE="wasm": the WASM SIMD engine is not built into this Worker yet (src/engine/ is in progress; see the hook in src/worker/engines.ts). Set ENGINE="ref".',
      );
  }
}

/** The pure-TypeScript reference engine: each tensor lands in its own buffer in one pass over the stream. */
async function loadReference(stream: ReadableStream<Uint8Array>, opts: LoadOptions): Promise<LoadedEngine> {
  const buffers = new Map<string, Uint8Array>();
  const header = await readGGUFStream(
    stream,
    (info) => {
      const b = new Uint8Array(info.byteLength);
      buffers.set(info.name, b);
      return b;
    },
    opts,
  );
  const config = configFromGGUF(header.metadata, header.tensorByName);
  const weights = await loadWeights(config, header.tensorByName, async (info) => {
    const b = buffers.get(info.name);
    if (!b) throw new Error(`tensor ${info.name} was not in the stream`);
    return b;
  });
  return { engine: referenceEngine(new ReferenceModel(config, weights)), metadata: header.metadata };
}
