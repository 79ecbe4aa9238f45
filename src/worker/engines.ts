/**
 * Weights stream → engine, inside workerd. The one place that knows which engines exist in the
 * Worker bundle; both loaders are the host-neutral stream loaders of src/model and src/engine.
 *
 * workerd refuses to compile wasm from bytes, so the kernel builds are imported as modules:
 * wrangler's bundler (and the test harness) turn `*.wasm` imports into WebAssembly.Modules.
 */
import fusedKernels from "../../build/kernels-relaxed-fused.wasm";
import relaxedKernels from "../../build/kernels-relaxed.wasm";
import scalarKernels from "../../build/kernels-scalar.wasm";
import simdKernels from "../../build/kernels-simd.wasm";
import { loadWasmEngineFromStream } from "../engine/index";
import type { BuildKind, KernelModules } from "../engine/kernels";
import type { ManifestCheck } from "../gguf/manifest";
import type { GGUFHeader } from "../gguf/reader";
import type { Metadata } from "../gguf/types";
import { referenceEngine, type Engine } from "../model/engine";
import { loadReferenceModelFromStream } from "../model/load";
import type { EngineName } from "../api/index";

/** Every kernel build, as wrangler bundles them; the engine picks one by self-test (docs/kernels.md, "Selection"). */
const KERNEL_MODULES: KernelModules = { "relaxed-fused": fusedKernels, relaxed: relaxedKernels, simd: simdKernels, scalar: scalarKernels };

export interface LoadOptions {
  /** Total bytes of the stream, for progress (the GGUF header's own size is used when unknown). */
  size?: number;
  /** The build the KERNELS var forces (default: the first that passes the self-test). */
  kernels?: BuildKind;
  onProgress?: (bytesRead: number, total: number) => void;
  /** Check the stream against the model's manifest as it is read (src/gguf/manifest.ts). */
  verify?: ManifestCheck;
  /** The object's version: the wasm engine keys its prefix cache by it (src/engine/kv-cache.ts). */
  modelIdentity?: string;
  /** The wasm engine's KV budget (KV_BUDGET_MB; default two full contexts) and its largest batched step (MAX_BATCH). */
  kvBudgetMB?: number;
  maxBatch?: number;
}

export interface LoadedEngine {
  engine: Engine;
  /** The GGUF's key/values: the tokenizer and chat template are built from them. */
  metadata: Metadata;
}

export async function loadEngineFromStream(name: EngineName, stream: ReadableStream<Uint8Array>, opts: LoadOptions = {}): Promise<LoadedEngine> {
  switch (name) {
    case "ref":
      return loadReference(stream, opts);
    case "wasm":
      return loadWasm(stream, opts);
    case "sharded":
      throw new Error("a sharded model is not streamed into the isolate: src/worker/sharded.ts loads it");
  }
}

/** The pure-TypeScript reference engine: each tensor lands in its own buffer in one pass over the stream. */
async function loadReference(stream: ReadableStream<Uint8Array>, opts: LoadOptions): Promise<LoadedEngine> {
  const { model, header } = await loadReferenceModelFromStream(stream, opts);
  return { engine: referenceEngine(model), metadata: header.metadata };
}

/**
 * The WASM SIMD engine: tensors stream straight into its memory. The kernel build is the first in
 * preference order that passes the self-test: a Worker's clock does not advance while it
 * computes, so a timed probe cannot choose here.
 */
async function loadWasm(stream: ReadableStream<Uint8Array>, opts: LoadOptions): Promise<LoadedEngine> {
  let header: GGUFHeader | undefined;
  const engine = await loadWasmEngineFromStream(stream, {
    modules: KERNEL_MODULES,
    force: opts.kernels,
    choose: "first",
    size: opts.size,
    onProgress: opts.onProgress,
    verify: opts.verify,
    modelIdentity: opts.modelIdentity,
    kvBudgetMB: opts.kvBudgetMB,
    maxBatch: opts.maxBatch,
    onHeader: (h) => (header = h),
  });
  return { engine, metadata: header!.metadata };
}
