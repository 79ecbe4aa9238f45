/**
 * The shard planner: cuts a StableLM GGUF into Worker-sized pieces (docs/sharding.md).
 * Pure: it sees only the GGUF header (metadata + tensor table) and the options, so it runs in
 * Node (`edgelm shard-plan`), in tests on synthetic headers, and could run in a Worker.
 *
 * Shards are of two kinds:
 *   layers  a contiguous range [first, end) of transformer blocks plus their KV cache slice;
 *   head    the final LayerNorm and a contiguous slice [r0, r1) of output.weight's rows
 *           (vocabulary rows), producing that slice of the logits.
 * The embedding table is not in any shard: the coordinator reads single rows by range.
 *
 * Each shard's memory is the engine's own layout of the shard (src/engine/layout.ts, the largest
 * over kernel builds, over the same tensors and options the runtime builds the shard's engine from:
 * ./shard-part.ts), rounded up and checked against the budget together with a fixed JS/isolate
 * overhead. The runtime gives the shard's WebAssembly.Memory `maxPages` as its hard maximum, so an
 * estimate that is too low fails at load, loudly, instead of running over the production limit.
 */
import { engineLayout } from "../engine/index";
import type { GGUFHeader } from "../gguf/reader";
import { typeName } from "../gguf/quant";
import type { TensorInfo, TensorType } from "../gguf/types";
import { configFromGGUF, type StableLMConfig } from "../model/config";
import { embeddingTensor, findTensor, headTensors, layerTensors, type ModelTensor } from "../model/tensors";
import type { EmbeddingHashesRef } from "./row-hashes";
import { shardPart } from "./shard-part";

export const PLAN_VERSION = 1;
const MiB = 2 ** 20;
const PAGE = 65536;

/**
 * Bytes outside WASM memory per shard isolate: V8 heap of the bundle, the compiled kernel
 * modules, the plan, per-request objects. Measured in Node on a loaded tiny/full2l shard
 * (test/shard/runtime.test.ts prints it): ~6–9 MiB of JS heap + ~1 MiB compiled wasm; 16 MiB
 * leaves room for workerd's own per-isolate structures, which cannot be measured locally.
 */
export const DEFAULT_OVERHEAD_BYTES = 16 * MiB;
/** Kernel static data + 512 KiB scratch below heapBase (every build is < 600 KiB). */
export const KERNEL_RESERVE = 1 * MiB;
/** Headroom on top of the engine's layout, so a plan survives a small engine buffer added later. */
export const SLACK_BYTES = 1 * MiB;
/** Default positions per prefill pass in a shard (the engine's work buffers scale with it). */
export const DEFAULT_SHARD_PREFILL_CHUNK = 32;
/** Head slices are a multiple of this many rows (Q4R/Q6R interleave 4 rows; 64 keeps slices tidy). */
const HEAD_ROW_ALIGN = 64;

/** A tensor (or a row slice of one) as a shard reads it: `byteLength` bytes at absolute file `offset`. */
export interface TensorRef {
  name: string;
  type: TensorType;
  /** ggml order: dims[0] is the row length. */
  dims: number[];
  offset: number;
  byteLength: number;
  /** sha256 (hex) of exactly these bytes, when the plan was made from the file (edgelm shard-plan): the shard checks what it loads against it. */
  sha256?: string;
}

export interface ShardMemory {
  /** Weights as the engine places them (its layout: repacked matrices, f32 vectors, 64-byte alignment). */
  weights: number;
  /** KV cache: layers × 2 × kvDim × 2 B × context × sequences. */
  kv: number;
  /** Engine work buffers (prefill chunk, scores, logits slice; the largest kernel build's) + kernel reserve. */
  buffers: number;
  /** The WASM memory's hard maximum, in bytes (= maxPages × 64 KiB). */
  wasm: number;
  /** JS/isolate overhead assumed on top. */
  overhead: number;
  /** wasm + overhead: what must fit the budget. */
  total: number;
}

export interface ShardSpec {
  index: number;
  /** Worker script name (one script per shard: instances of one class may share an isolate). */
  script: string;
  /** The coordinator's Durable Object namespace binding for this shard. */
  binding: string;
  kind: "layers" | "head";
  /** layers: [first, end). */
  layers?: [number, number];
  /** head: vocabulary rows [r0, r1). */
  rows?: [number, number];
  tensors: TensorRef[];
  memory: ShardMemory;
  /** Hard maximum of the shard's WebAssembly.Memory, in 64 KiB pages. */
  maxPages: number;
}

export interface ShardPlan {
  version: number;
  model: {
    /** The R2 object key of the GGUF (every shard range-reads the same object). */
    key: string;
    /** File size and data offset: a shard checks the object it opens against them. */
    size: number;
    dataOffset: number;
    /** sha256 (hex) of the header, bytes [0, dataOffset), when the plan was made from the file: the coordinator checks the header it reads. */
    headerSha256?: string;
    config: StableLMConfig;
  };
  /**
   * token_embd.weight: the coordinator reads row t at offset + t × rowBytes. `hashes`, when the plan
   * was made from the file: the per-row hashes object the coordinator checks each row against.
   */
  embedding: TensorRef & { rowBytes: number; hashes?: EmbeddingHashesRef };
  budgetBytes: number;
  overheadBytes: number;
  contextLength: number;
  sequences: number;
  prefillChunk: number;
  shards: ShardSpec[];
}

export interface PlanOptions {
  /** Object key the shards read (default "model.gguf"). */
  key?: string;
  /** File size in bytes (default: the header's totalSize). */
  size?: number;
  budgetBytes: number;
  contextLength: number;
  /** KV budget per shard, in sequences of the full context (blocks shared by however many sequences fit; the least recently used gives way beyond). */
  sequences: number;
  prefillChunk?: number;
  overheadBytes?: number;
  /** Script name prefix (default "edgelm-shard"). */
  prefix?: string;
}

export class ShardPlanError extends Error {
  override name = "ShardPlanError";
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

function ref(t: TensorInfo, dataOffset: number): TensorRef {
  return { name: t.name, type: t.type, dims: [...t.dims], offset: dataOffset + t.offset, byteLength: t.byteLength };
}

/** The planner's errors are ShardPlanErrors (the CLI reports them as usage errors), the engine's included. */
function planning<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof ShardPlanError ? e : new ShardPlanError((e as Error).message);
  }
}

type Run = { contextLength: number; sequences: number; prefillChunk: number };

/** The shard's memory: the engine's layout of its part, the largest over kernel builds, in whole pages with headroom. */
function shardMemory(config: StableLMConfig, run: Run, part: Pick<ShardSpec, "kind" | "layers" | "rows" | "tensors">, overhead: number): { memory: ShardMemory; maxPages: number } {
  const { tensors, options } = shardPart(run, part);
  const layout = planning(() => engineLayout(config, tensors, { ...options, build: "max" }));
  const weights = layout.weightBytes;
  const kv = layout.kvBytes;
  const buffers = KERNEL_RESERVE + layout.bufferBytes;
  const maxPages = Math.ceil((weights + kv + buffers + SLACK_BYTES) / PAGE);
  const wasm = maxPages * PAGE;
  return { memory: { weights, kv, buffers, wasm, overhead, total: wasm + overhead }, maxPages };
}

export function planShards(header: Pick<GGUFHeader, "metadata" | "tensorByName" | "tensors" | "dataOffset" | "totalSize">, opts: PlanOptions): ShardPlan {
  const config = configFromGGUF(header.metadata, header.tensorByName);
  const { budgetBytes, contextLength: ctx, sequences } = opts;
  const chunk = opts.prefillChunk ?? DEFAULT_SHARD_PREFILL_CHUNK;
  const overhead = opts.overheadBytes ?? DEFAULT_OVERHEAD_BYTES;
  const prefix = opts.prefix ?? "edgelm-shard";
  const { dataOffset } = header;
  if (!Number.isInteger(ctx) || ctx < 1 || ctx > config.contextLength) throw new ShardPlanError(`context must be an integer in 1..${config.contextLength} (the model's), got ${ctx}`);
  if (!Number.isInteger(sequences) || sequences < 1) throw new ShardPlanError(`sequences must be a positive integer, got ${sequences}`);
  if (!Number.isInteger(chunk) || chunk < 1) throw new ShardPlanError(`prefill chunk must be a positive integer, got ${chunk}`);
  if (!(budgetBytes > 0)) throw new ShardPlanError(`budget must be positive, got ${budgetBytes}`);

  const run: Run = { contextLength: ctx, sequences, prefillChunk: chunk };
  // The table's tensors that the file holds (absent optional ones are not read), in file order.
  const present = (list: ModelTensor[]) =>
    planning(() => list.map((t) => findTensor(header.tensorByName, t)))
      .filter((t): t is TensorInfo => !!t)
      .sort((a, b) => a.offset - b.offset);

  // ---- layer shards: contiguous ranges, as few shards as fit, then balanced.
  const layerRefs = Array.from({ length: config.numLayers }, (_, l) => present(layerTensors(config, l)).map((t) => ref(t, dataOffset)));
  const layerPart = (a: number, b: number) => ({ kind: "layers" as const, layers: [a, b] as [number, number], tensors: layerRefs.slice(a, b).flat() });
  const rangeCost = (a: number, b: number) => shardMemory(config, run, layerPart(a, b), overhead);
  const fits = (a: number, b: number) => rangeCost(a, b).memory.total <= budgetBytes;

  for (let l = 0; l < config.numLayers; l++) {
    if (!fits(l, l + 1)) {
      const m = rangeCost(l, l + 1).memory;
      throw new ShardPlanError(
        `budget ${mib(budgetBytes)} is too small for even one layer: layer ${l} needs ${mib(m.total)} ` +
          `(weights ${mib(m.weights)}, KV ${mib(m.kv)} for ${sequences} × ${ctx} positions, buffers ${mib(m.buffers)}, overhead ${mib(overhead)}); ` +
          `raise --budget-mb or lower --context / --sequences`,
      );
    }
  }
  // Greedy gives the fewest shards for contiguous ranges; then spread the layers evenly over
  // that many shards (fewer layers per shard = less KV per isolate, same hop count).
  let count = 0;
  for (let l = 0; l < config.numLayers; count++) {
    let e = l + 1;
    while (e < config.numLayers && fits(l, e + 1)) e++;
    l = e;
  }
  let ranges: [number, number][] = [];
  for (let i = 0, l = 0; i < count; i++) {
    const n = Math.floor(config.numLayers / count) + (i < config.numLayers % count ? 1 : 0);
    ranges.push([l, l + n]);
    l += n;
  }
  if (!ranges.every(([a, b]) => fits(a, b))) {
    ranges = []; // uneven layers: keep the greedy cut
    for (let l = 0; l < config.numLayers; ) {
      let e = l + 1;
      while (e < config.numLayers && fits(l, e + 1)) e++;
      ranges.push([l, e]);
      l = e;
    }
  }

  const shards: ShardSpec[] = [];
  const add = (s: Omit<ShardSpec, "index" | "script" | "binding">) => {
    const index = shards.length;
    shards.push({ index, script: `${prefix}-${index}`, binding: `SHARD_${index}`, ...s });
  };
  for (const [a, b] of ranges) add({ ...layerPart(a, b), ...rangeCost(a, b) });

  // ---- head shards: output_norm + a slice of output.weight's rows each.
  const head = present(headTensors(config));
  const out = head.find((t) => t.name === "output.weight")!;
  const norms = head.filter((t) => t !== out).map((t) => ref(t, dataOffset));
  const V = config.vocabSize;
  const H = config.hiddenSize;
  const rowBytes = out.byteLength / V;
  const slice = (r0: number, r1: number): TensorRef => ({ name: out.name, type: out.type, dims: [H, r1 - r0], offset: dataOffset + out.offset + r0 * rowBytes, byteLength: (r1 - r0) * rowBytes });
  const headPart = (r0: number, r1: number) => ({ kind: "head" as const, rows: [r0, r1] as [number, number], tensors: [...norms, slice(r0, r1)] });
  const headCost = (rows: number) => shardMemory(config, run, headPart(0, rows), overhead);
  let maxRows = 0;
  for (let step = 1 << 20; step >= HEAD_ROW_ALIGN; step >>= 1) {
    if (maxRows + step <= align(V, HEAD_ROW_ALIGN) && headCost(Math.min(V, maxRows + step)).memory.total <= budgetBytes) maxRows += step;
  }
  if (maxRows === 0) {
    throw new ShardPlanError(
      `budget ${mib(budgetBytes)} is too small for the output head: ${HEAD_ROW_ALIGN} rows of output.weight (${typeName(out.type)}) need ${mib(headCost(HEAD_ROW_ALIGN).memory.total)}; raise --budget-mb`,
    );
  }
  const heads = Math.ceil(V / maxRows);
  const per = align(Math.ceil(V / heads), HEAD_ROW_ALIGN);
  for (let r0 = 0; r0 < V; r0 += per) {
    const part = headPart(r0, Math.min(V, r0 + per));
    add({ ...part, ...shardMemory(config, run, part, overhead) });
  }

  const embd = present([embeddingTensor(config)])[0];
  return {
    version: PLAN_VERSION,
    model: { key: opts.key ?? "model.gguf", size: opts.size ?? header.totalSize, dataOffset, config },
    embedding: { ...ref(embd, dataOffset), rowBytes: embd.byteLength / V },
    budgetBytes,
    overheadBytes: overhead,
    contextLength: ctx,
    sequences,
    prefillChunk: chunk,
    shards,
  };
}

/** The plan as a table, one row per shard. */
export function formatPlan(plan: ShardPlan): string {
  const m = (n: number) => (n / MiB).toFixed(1).padStart(7);
  const lines = [
    `${plan.model.key}: ${plan.model.config.numLayers} layers, vocab ${plan.model.config.vocabSize}, hidden ${plan.model.config.hiddenSize}; ` +
      `budget ${mib(plan.budgetBytes)} per shard, context ${plan.contextLength}, ${plan.sequences} sequence(s), prefill chunk ${plan.prefillChunk}, overhead ${mib(plan.overheadBytes)}`,
    "",
    `${"shard".padEnd(18)} ${"holds".padEnd(24)} ${"weights".padStart(7)} ${"KV".padStart(7)} ${"buffers".padStart(7)} ${"wasm max".padStart(8)} ${"total".padStart(7)}  (MiB)`,
  ];
  for (const s of plan.shards) {
    const holds = s.kind === "layers" ? `layers ${s.layers![0]}–${s.layers![1] - 1}` : `head rows ${s.rows![0]}–${s.rows![1] - 1}`;
    lines.push(`${s.script.padEnd(18)} ${holds.padEnd(24)} ${m(s.memory.weights)} ${m(s.memory.kv)} ${m(s.memory.buffers)} ${m(s.memory.wasm).padStart(8)} ${m(s.memory.total)}`);
  }
  const layers = plan.shards.filter((s) => s.kind === "layers").length;
  lines.push(
    "",
    `${plan.shards.length} shards (${layers} layer, ${plan.shards.length - layers} head); per decoded token ${layers} sequential hops + ${plan.shards.length - layers} parallel head calls; ` +
      `embedding rows read by range (${plan.embedding.rowBytes} B each, ${typeName(plan.embedding.type)}).`,
  );
  return lines.join("\n");
}
