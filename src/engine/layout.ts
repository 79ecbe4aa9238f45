/**
 * The WASM engine's memory, as one pure function of the model: from a config,
 * the file's tensor entries and the options, where every placed weight, every
 * work buffer and the KV pool go, and how many bytes each takes. The engine
 * allocates by it (`placeEngine` in ./index.ts) and the shard planner sizes
 * shards by it (src/shard/plan.ts), so the two cannot drift apart. It needs no
 * kernel instance: the kernels' block sizes are ./kernel-sizes.ts.
 *
 * Every tensor, shape check and "tensor X is missing" error comes from the
 * model's tensor table (src/model/tensors.ts); this file adds what the engine
 * makes of each tensor:
 *
 *   Q4_0 matrices  → Q4R (4-row interleave, repacked in place; a last partial group is padded)
 *   Q6_K matrices  → Q6R (likewise)
 *   Q4_1 matrices  → Q41R (likewise, with the four rows' mins beside their scales)
 *   Q5_0, Q5_1 matrices → Q50R, Q51R (likewise, with the rows' fifth-bit words)
 *   Q4_K, Q5_K matrices → Q4KR, Q5KR (4-row groups with the scales unpacked: Q4KR 16 B more per
 *                    group and 256 columns than the file, Q5KR a byte per value, 1.57× the file;
 *                    repacked in place from the last group)
 *   Q8_0 matrices  → Q8R (4-row groups with the rows' scales as f32: 8 B more per group and
 *                    32 columns than the file, repacked in place from the last group)
 *   Q2_K, Q3_K, F32/F16/BF16 matrices, and the embedding table of any type: as stored
 *   1-D tensors (norms, biases) → f32
 */
import { layoutOf, typeName } from "../gguf/quant";
import { TensorType, type TensorInfo } from "../gguf/types";
import type { StableLMConfig } from "../model/config";
import { embeddingTensor, findTensor, headTensors, layerTensors, type ModelTensor } from "../model/tensors";
import type { BuildKind } from "./kernels";
import { BUILD_KINDS, isQuantized, q8aBytes, q8bBytes, Q8R_MAX_COLS, repackedBytes, SCRATCH_BYTES } from "./kernel-sizes";

export { isQuantized };
import { kvBlockBytes, kvBytes, type KVLayout } from "./kv-cache";
import { MAX_CHUNK_POSITIONS } from "./position-split";
import { shareRowsMax } from "./row-split";
import { controlBytes } from "./thread-pool";

const DEFAULT_CONTEXT = 4096;
const DEFAULT_SEQUENCES = 2;
const DEFAULT_PREFILL_CHUNK = 64;
const DEFAULT_BLOCK_POSITIONS = 16;
/** Every region starts on a cache line. */
export const ALIGN = 64;

const F32 = 4;

export interface WasmEngineOptions {
  /** Positions one sequence may reach; default min(model context, 4096). */
  contextLength?: number;
  /** The KV budget in sequences of the full context (default 2), unless kvBudgetMB is given. See kv-cache.ts. */
  sequences?: number;
  /** The KV budget in MiB (rounded down to whole blocks). */
  kvBudgetMB?: number;
  /** Positions per KV block (default 16). */
  blockPositions?: number;
  /** Sequences whose logits one LM-head product computes: the largest batched step expected (default `sequences`, at most the prefill chunk). */
  maxBatch?: number;
  /** Positions per prefill matrix-matrix step; default 64 (the matmul kernels' own tile). */
  prefillChunk?: number;
  /** What the weights are (a file version or hash): prefix-cache keys carry it (kv-cache.ts). */
  modelIdentity?: string;
}

/** The part of the model an engine holds: all of it by default, one shard's share in a shard. */
export interface PartOptions {
  /** Transformer layers [first, end) whose weights and KV cache are placed (default: all). */
  layers?: readonly [number, number];
  /** Rows of output.weight placed (a head shard's vocabulary slice); 0 places no head (default: the vocabulary). */
  logitsRows?: number;
  /** Whether token_embd.weight is placed (default true; shards are handed hidden states instead). */
  embedding?: boolean;
}

export interface ThreadOptions {
  /** Threads that share the big matrix products (Node only; default 1). Each beyond the first needs its own regions. */
  threads?: number;
}

export interface LayoutOptions extends WasmEngineOptions, PartOptions, ThreadOptions {
  /** The kernel build whose sizes apply, or "max": the largest over all builds (the shard planner cannot know which build a shard will run). */
  build: BuildKind | "max";
}

/** How the kernels read a matrix. */
export type MatrixKind = "q4r" | "q8r" | "q6r" | "q4kr" | "q5kr" | "q2kr" | "q3kr" | "q41r" | "q50r" | "q51r" | "f32" | "f16" | "bf16";

const MATRIX_KINDS: Partial<Record<TensorType, MatrixKind>> = {
  [TensorType.Q4_0]: "q4r",
  [TensorType.Q8_0]: "q8r",
  [TensorType.Q6_K]: "q6r",
  [TensorType.Q4_K]: "q4kr",
  [TensorType.Q5_K]: "q5kr",
  [TensorType.Q2_K]: "q2kr",
  [TensorType.Q3_K]: "q3kr",
  [TensorType.Q4_1]: "q41r",
  [TensorType.Q5_0]: "q50r",
  [TensorType.Q5_1]: "q51r",
  [TensorType.F32]: "f32",
  [TensorType.F16]: "f16",
  [TensorType.BF16]: "bf16",
};

/** Bytes at `offset` from the start of the layout. */
export interface Region {
  offset: number;
  bytes: number;
}

/** One tensor's place, with the table's entry and the file's. */
export interface PlacedTensor extends Region {
  tensor: ModelTensor;
  info: TensorInfo;
  /** Matrices: how the kernels read it (the embedding is read a row at a time by its type instead). */
  kind?: MatrixKind;
  /** Repacked in place once its bytes are in (Q4R, Q8R, Q6R, Q4KR, Q5KR, Q41R, Q50R, Q51R). */
  repack: boolean;
}

/** The engine's work buffers (their shapes are stated in wasm-engine.ts). */
export type BufferName = "X" | "A" | "Q" | "K" | "V" | "ATT" | "O" | "M" | "G" | "U" | "D" | "Q8" | "Q8ROW" | "SCORES" | "TABLE" | "XN" | "LOGITS" | "ZEROS";

/**
 * What the threads of a multi-threaded engine need (./thread-pool.ts): the
 * control block; for each thread beyond the main one a scratch region for
 * its kernel instance and an attention scores buffer (thread i ≥ 1 gets
 * scratch[i − 1] and scores[i − 1]; the main thread keeps the kernels'
 * static scratch and SCORES); and a tile per thread for its rows of a
 * prefill product (./row-split.ts) or its positions' Q8B
 * (./position-split.ts). Empty with one thread.
 */
export interface ThreadRegions {
  count: number;
  control: Region;
  scratch: Region[];
  scores: Region[];
  tiles: Region[];
}

export interface EngineLayout {
  contextLength: number;
  sequences: number;
  prefillChunk: number;
  /** Positions whose logits one LM-head product computes: one per sequence of a batched step, up to the chunk. */
  logitsBatch: number;
  layers: [number, number];
  logitsRows: number;
  embedding: boolean;
  /** Placed tensors by GGUF name (absent optional tensors are not here). */
  tensors: Map<string, PlacedTensor>;
  buffers: Record<BufferName, Region>;
  threads: ThreadRegions;
  kv: Region & { layout: KVLayout };
  /** Bytes of the weights, of the buffers (the threads' regions included), each region rounded up to ALIGN, and of the KV pool. */
  weightBytes: number;
  bufferBytes: number;
  kvBytes: number;
  /** weightBytes + bufferBytes + kvBytes: one allocation at an ALIGN boundary holds it all. */
  total: number;
}

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** Throws, naming the tensor, on a missing tensor, a wrong shape or a type the kernels cannot read. */
export function engineLayout(config: StableLMConfig, tensors: ReadonlyMap<string, TensorInfo>, opts: LayoutOptions): EngineLayout {
  const { hiddenSize: H, intermediateSize: F, numLayers: L, numHeads, numKVHeads, headDim } = config;
  const contextLength = opts.contextLength ?? Math.min(config.contextLength, DEFAULT_CONTEXT);
  if (!Number.isInteger(contextLength) || contextLength < 1 || contextLength > config.contextLength) {
    throw new RangeError(`contextLength must be an integer in 1..${config.contextLength} (the model's), got ${opts.contextLength}`);
  }
  const sequences = opts.sequences ?? DEFAULT_SEQUENCES;
  if (!Number.isInteger(sequences) || sequences < 1) throw new RangeError(`sequences must be a positive integer, got ${opts.sequences}`);
  const P = opts.blockPositions ?? DEFAULT_BLOCK_POSITIONS;
  if (!Number.isInteger(P) || P < 1 || P > contextLength) throw new RangeError(`blockPositions must be an integer in 1..${contextLength} (the context), got ${opts.blockPositions}`);
  const maxBatch = opts.maxBatch ?? sequences;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${opts.maxBatch}`);
  const C = opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
  if (!Number.isInteger(C) || C < 1) throw new RangeError(`prefillChunk must be a positive integer, got ${opts.prefillChunk}`);
  const [first, end] = opts.layers ?? [0, L];
  if (!Number.isInteger(first) || !Number.isInteger(end) || first < 0 || end > L || first > end) throw new RangeError(`layers [${first}, ${end}) are outside the model's 0..${L}`);
  const logitsRows = opts.logitsRows ?? config.vocabSize;
  if (!Number.isInteger(logitsRows) || logitsRows < 0 || logitsRows > config.vocabSize) throw new RangeError(`logitsRows must be an integer in 0..${config.vocabSize}, got ${opts.logitsRows}`);
  const embedding = opts.embedding ?? true;
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${opts.threads}`);
  if (H % 32 !== 0 || F % 32 !== 0 || headDim % 8 !== 0) throw new Error(`the wasm kernels need hidden and ffn sizes that are multiples of 32 and a head size multiple of 8 (got ${H}, ${F}, ${headDim})`);

  let top = 0;
  const region = (bytes: number): Region => {
    const offset = align(top);
    top = offset + bytes;
    return { offset, bytes };
  };

  // ---- weights: the table's tensors for this part (a head slice is output.weight with logitsRows rows)
  const wanted: ModelTensor[] = [
    ...(embedding ? [embeddingTensor(config)] : []),
    ...Array.from({ length: end - first }, (_, i) => layerTensors(config, first + i)).flat(),
    ...(logitsRows > 0 ? headTensors({ ...config, vocabSize: logitsRows }) : []),
  ];
  const placed = new Map<string, PlacedTensor>();
  for (const t of wanted) {
    const info = findTensor(tensors, t);
    if (!info) continue;
    if (t.kind === "vector") {
      layoutOf(info.type);
      placed.set(t.name, { tensor: t, info, repack: false, ...region(t.length * F32) });
      continue;
    }
    const kind = MATRIX_KINDS[info.type];
    if (!kind) {
      const names = Object.keys(MATRIX_KINDS).map((x) => typeName(Number(x))).join(", ");
      throw new Error(`tensor ${t.name}: unsupported tensor type ${typeName(info.type)} (the wasm engine supports ${names})`);
    }
    if (isQuantized(kind) && t.cols % 32 !== 0) throw new Error(`tensor ${t.name}: ${t.cols} columns`);
    if (t.role === "embed") {
      // Read a row at a time by the dequantize kernels, which want the file layout.
      if ((kind === "q6r" || kind === "q4kr" || kind === "q5kr" || kind === "q2kr" || kind === "q3kr") && H % 256 !== 0) throw new Error(`token_embd.weight: ${typeName(info.type)} rows of ${H}`);
      placed.set(t.name, { tensor: t, info, kind, repack: false, ...region(info.byteLength) });
      continue;
    }
    if (kind === "q8r" && t.cols > Q8R_MAX_COLS) throw new Error(`tensor ${t.name}: ${t.cols} columns of Q8_0; the wasm engine's Q8_0 kernels take at most ${Q8R_MAX_COLS}`);
    // Q4R and Q6R have the file's bytes per 4-row group (only a last partial group needs padding); Q4KR and Q8R a little more, Q5KR 1.57×.
    const repacked = repackedBytes(kind, t.rows, t.cols);
    placed.set(t.name, { tensor: t, info, kind, repack: repacked > 0, ...region(Math.max(repacked, info.byteLength)) });
  }
  const weightBytes = align(top);

  // ---- work buffers: C = prefillChunk positions of every activation, B = logitsBatch of the head's, one row of the rest
  const B = Math.min(maxBatch, C);
  const kvDim = numKVHeads * headDim;
  const maxCols = Math.max(H, F);
  const overBuilds = (f: (b: BuildKind) => number) => (opts.build === "max" ? Math.max(...BUILD_KINDS.map(f)) : f(opts.build));
  const buffers: Record<BufferName, Region> = {
    X: region(C * H * F32),
    A: region(C * H * F32),
    Q: region(C * H * F32),
    K: region(C * kvDim * F32),
    V: region(C * kvDim * F32),
    ATT: region(C * H * F32),
    O: region(C * H * F32),
    M: region(C * H * F32),
    G: region(C * F * F32),
    U: region(C * F * F32),
    D: region(C * H * F32),
    Q8: region(overBuilds((b) => Math.max(q8bBytes(b, maxCols, C), q8aBytes(maxCols)))),
    Q8ROW: region(q8aBytes(maxCols)),
    SCORES: region(numHeads * contextLength * F32),
    TABLE: region(C * Math.ceil(contextLength / P) * 4),
    XN: region(B * H * F32),
    LOGITS: region(B * logitsRows * F32),
    ZEROS: region(Math.max(H, headDim) * F32),
  };
  // ---- threads: control block, scratch and scores per extra thread, a tile per thread: [C × share] f32 or the Q8B of a chunk's positions
  const none = { count: 1, control: { offset: 0, bytes: 0 }, scratch: [], scores: [], tiles: [] };
  const productTile = C * shareRowsMax(Math.max(H, F, kvDim), threads) * F32;
  const tileBytes = C > 1 ? Math.max(productTile, overBuilds((b) => q8bBytes(b, maxCols, Math.min(C, MAX_CHUNK_POSITIONS)))) : 0;
  const threadRegions: ThreadRegions =
    threads === 1
      ? none
      : {
          count: threads,
          control: region(controlBytes(threads)),
          scratch: Array.from({ length: threads - 1 }, () => region(SCRATCH_BYTES)),
          scores: Array.from({ length: threads - 1 }, () => region(numHeads * contextLength * F32)),
          tiles: Array.from({ length: threads }, () => region(tileBytes)),
        };
  const bufferBytes = align(top) - weightBytes;

  // ---- the KV pool, last
  const blockShape = { firstLayer: first, numLayers: end - first, numKVHeads, headDim, blockPositions: P };
  const blocks =
    opts.kvBudgetMB === undefined ? sequences * Math.ceil(contextLength / P) : Math.floor((opts.kvBudgetMB * 2 ** 20) / Math.max(1, kvBlockBytes(blockShape)));
  if (opts.kvBudgetMB !== undefined && !(opts.kvBudgetMB > 0)) throw new RangeError(`kvBudgetMB must be a positive number, got ${opts.kvBudgetMB}`);
  if (blocks < 1) throw new RangeError(`a KV budget of ${opts.kvBudgetMB} MiB holds no block of ${P} positions (${(kvBlockBytes(blockShape) / 2 ** 20).toFixed(2)} MiB)`);
  const kvLayout: KVLayout = { ...blockShape, contextLength, blocks, ...(opts.modelIdentity === undefined ? {} : { modelIdentity: opts.modelIdentity }) };
  const kv = { ...region(kvBytes(kvLayout)), layout: kvLayout };

  return {
    contextLength,
    sequences,
    prefillChunk: C,
    logitsBatch: B,
    layers: [first, end],
    logitsRows,
    embedding,
    tensors: placed,
    buffers,
    threads: threadRegions,
    kv,
    weightBytes,
    bufferBytes,
    kvBytes: kv.bytes,
    total: top,
  };
}
