/**
 * The fast StableLM forward pass: the same algorithm as src/model/reference.ts
 * (docs/model.md, The forward pass), written as a sequence of kernel calls
 * over buffers in WASM memory. Readable top to bottom; every buffer's shape is
 * stated where it is declared (its bytes come from the engine's layout,
 * ./layout.ts). The kernels (assembly/, docs/kernels.md) do the arithmetic;
 * this file only decides what is multiplied with what.
 *
 * Prefill runs in chunks of up to `prefillChunk` positions as matrix-matrix
 * products (each weight block is unpacked once per chunk and used for every
 * position in it); decode (one position) runs as matrix-vector products.
 * Activations entering a quantized matrix are rounded to int8 per 32-block
 * (Q8A for one position, Q8B for a chunk), as llama.cpp does, with one scale
 * per block, or per 256 values when a Q4_K / Q5_K matrix reads them (all of
 * that activation's products then read the 256 grain: llama.cpp's Q8_K).
 *
 * A batched step (forwardBatch) puts several sequences' positions in one
 * chunk: the rows of every matrix product are all of them, so each weight
 * block is read once per step for every sequence, while rotary, the KV store
 * and attention run per sequence on its own positions and cache. A row's
 * arithmetic does not depend on the rows beside it (the matmul kernels give
 * each position the bits of a matrix-vector product), so a sequence's logits
 * are the same bits batched or alone.
 *
 * The work between the products is written as kernel calls over a range of
 * rows (and attention as calls per sequence and KV head): on one thread they
 * run over all rows at once; with a thread pool (Node, ./thread-pool.ts) the
 * products are split by rows of the weights (./row-split.ts) and the rest by
 * rows of the chunk and by heads (./position-split.ts) between the threads,
 * bit-identical to one thread.
 */
import type { BatchEntry, Engine, EngineStats, ForwardOptions } from "../model/engine";
import type { StableLMConfig } from "../model/config";
import type { Head } from "../model/tensors";
import { layoutOf } from "../gguf/quant";
import { TensorType } from "../gguf/types";
import type { KernelExports, Kernels } from "./kernels";
import { KVBudgetError, KVPool, WasmSequence } from "./kv-cache";
import { needsGrain256 } from "./kernel-sizes";
import { isQuantized, type EngineLayout } from "./layout";
import type { WasmMatrix, WasmWeights } from "./load";
import { attentionChunks, positionRanges, quantizeCalls, type AttentionSegment, type Q8Target } from "./position-split";
import { splitProducts, type Product } from "./row-split";
import { runChunk, ThreadError, type Call, type Chunk, type ThreadPool } from "./thread-pool";

const F32 = 4;

/**
 * From this many positions the Q4R, Q8_0, Q4KR and Q5KR products run as one matmul call:
 * the kernel takes up to six positions (and a prompt's last ntok % 8) on its
 * small-batch path, one pass over the weights for up to four of them, so
 * even a step of two decoding streams costs no more than two matrix-vector
 * products (docs/kernels.md, Small batches). The bits are the same either way.
 */
const MATMUL_MIN_ROWS = 2;

/**
 * Each quantized kind's matrix-vector and matrix-matrix kernels, by export
 * name: a constant, so a product allocates no table, and looked up on the
 * engine's exports at each call, so a profiler that wraps them sees every call.
 */
const QUANT_KERNELS = {
  q4r: ["matvec_q4r_q8a", "matmul_q4r_q8b"],
  q8r: ["matvec_q8r_q8a", "matmul_q8r_q8b"],
  q6r: ["matvec_q6r_q8a", "matmul_q6r_q8b"],
  q4kr: ["matvec_q4kr_q8a", "matmul_q4kr_q8b"],
  q5kr: ["matvec_q5kr_q8a", "matmul_q5kr_q8b"],
  q2kr: ["matvec_q2kr_q8a", "matmul_q2kr_q8b"],
  q3kr: ["matvec_q3kr_q8a", "matmul_q3kr_q8b"],
  q41r: ["matvec_q41r_q8a", "matmul_q41r_q8b"],
  q50r: ["matvec_q50r_q8a", "matmul_q50r_q8b"],
  q51r: ["matvec_q51r_q8a", "matmul_q51r_q8b"],
} as const satisfies Record<Exclude<WasmMatrix["kind"], "f32" | "f16" | "bf16">, readonly [keyof KernelExports, keyof KernelExports]>;

/** Absolute addresses of the layout's ThreadRegions: what the host hands each thread it starts. */
export interface ThreadMemory {
  count: number;
  control: number;
  /** Thread i ≥ 1 gets scratch[i − 1]. */
  scratch: number[];
  /** Thread i gets scores[i] and tiles[i] (scores[0] is the engine's SCORES). */
  scores: number[];
  tiles: number[];
  tileBytes: number;
}

/** A run of consecutive rows of a chunk that belong to one sequence: rows row..row+m−1 are its positions pos0..pos0+m−1. */
interface Segment {
  seq: WasmSequence;
  pos0: number;
  row: number;
  m: number;
}

/** The segments of the chunk's rows `keep` (ascending), renumbered from row 0 as they are once moved there: a run of kept rows of one segment stays one segment. */
function keptSegments(segments: readonly Segment[], keep: readonly number[]): Segment[] {
  const out: Segment[] = [];
  keep.forEach((r, i) => {
    const s = segments.find((x) => r >= x.row && r < x.row + x.m);
    if (!s) throw new Error(`internal: row ${r} belongs to no segment`);
    const prev = out[out.length - 1];
    if (prev && prev.seq === s.seq && prev.row + prev.m === i && prev.pos0 + prev.m === s.pos0 + (r - s.row)) prev.m++;
    else out.push({ seq: s.seq, pos0: s.pos0 + (r - s.row), row: i, m: 1 });
  });
  return out;
}

export class WasmEngine implements Engine {
  readonly contextLength: number;
  readonly prefillChunk: number;
  /** Positions whose logits one LM-head product computes. */
  readonly logitsBatch: number;
  /** The layers this engine holds, [first, end): all of them unless it is a shard. */
  readonly heldLayers: readonly [number, number];
  readonly pool: KVPool;
  private readonly k: KernelExports;
  private readonly memory: WebAssembly.Memory;
  private f32view: Float32Array;
  /** The threads that share the products, while usable; see useThreads. */
  private threadsInUse: ThreadPool | undefined;
  private threadNote = "";
  readonly threadMemory: ThreadMemory;
  /** Where quantizeCalls put a chunk's Q8B. */
  private readonly q8: Q8Target;
  /** Values per activation scale of what Q8 holds now: a Q4_K / Q5_K product refuses anything but 256. */
  private q8Grain: 32 | 256 = 32;

  // Work buffers (byte offsets in WASM memory). C = prefillChunk, H = hidden,
  // KV = numKVHeads·headDim, F = intermediate, R = logitsRows (V unless a head shard).
  private readonly X: number; //      [C × H]  f32  residual stream (hidden state), updated in place
  private readonly A: number; //      [C × H]  f32  LayerNorm output (input of q/k/v, and of the MLP when parallel)
  private readonly Q: number; //      [C × H]  f32  queries (numHeads × headDim per position)
  private readonly K: number; //      [C × KV] f32  keys of the new positions, before they go to the f16 cache
  private readonly Vv: number; //     [C × KV] f32  values of the new positions
  private readonly ATT: number; //    [C × H]  f32  attention output (heads concatenated)
  private readonly O: number; //      [C × H]  f32  attn_output projection
  private readonly M: number; //      [C × H]  f32  ffn_norm output (sequential layout)
  private readonly G: number; //      [C × F]  f32  gate projection, then silu(gate)·up
  private readonly U: number; //      [C × F]  f32  up projection
  private readonly D: number; //      [C × H]  f32  down projection
  private readonly Q8: number; //     Q8B of [C × max(H, F)] (or Q8A of one row): quantized input of the next products
  private readonly Q8ROW: number; //  Q8A of one [max(H, F)] row: per-position products (below MATMUL_MIN_ROWS positions)
  private readonly SCORES: number; // [numHeads × ctx] f32  attention scores, a row per query head (the main thread's; each other thread has its own)
  private readonly TABLE: number; //  [C × ctx/P] u32  addresses of each segment's KV blocks (P = positions per block)
  private readonly XN: number; //     [B × H] f32  final LayerNorm of the positions whose logits are wanted (B = logitsBatch)
  private readonly LOGITS: number; // [B × R] f32  their logits

  /** Over the memory of `kernels`, in the allocation of `layout.total` bytes at `base` that planModel placed `weights` in. */
  constructor(
    readonly config: StableLMConfig,
    readonly kernels: Kernels,
    readonly weights: WasmWeights,
    layout: EngineLayout,
    base: number,
  ) {
    this.k = kernels.exports;
    this.memory = kernels.memory;
    this.contextLength = layout.contextLength;
    this.prefillChunk = layout.prefillChunk;
    this.logitsBatch = layout.logitsBatch;
    this.heldLayers = layout.layers;
    const at = (name: keyof EngineLayout["buffers"]) => base + layout.buffers[name].offset;
    this.X = at("X");
    this.A = at("A");
    this.Q = at("Q");
    this.K = at("K");
    this.Vv = at("V");
    this.ATT = at("ATT");
    this.O = at("O");
    this.M = at("M");
    this.G = at("G");
    this.U = at("U");
    this.D = at("D");
    this.Q8 = at("Q8");
    this.Q8ROW = at("Q8ROW");
    this.SCORES = at("SCORES");
    this.TABLE = at("TABLE");
    this.XN = at("XN");
    this.LOGITS = at("LOGITS");
    this.pool = new KVPool(layout.kv.layout, base + layout.kv.offset);
    this.pool.memory = this.memory;
    this.f32view = new Float32Array(this.memory.buffer);
    const t = layout.threads;
    this.threadMemory = {
      count: t.count,
      control: base + t.control.offset,
      scratch: t.scratch.map((r) => base + r.offset),
      scores: [this.SCORES, ...t.scores.map((r) => base + r.offset)],
      tiles: t.tiles.map((r) => base + r.offset),
      tileBytes: t.tiles[0]?.bytes ?? 0,
    };
    this.q8 = { build: kernels.kind, dst: this.Q8 };
  }

  get name(): string {
    return `wasm (${this.kernels.kind} kernels: ${this.kernels.reason}${this.threadNote})`;
  }

  /** Threads computing the products now: the pool's, or 1. */
  get threads(): number {
    return this.threadsInUse?.usable ? this.threadsInUse.size : 1;
  }

  /** The pool while it is in use (tests reach its failNext hook through this). */
  get threadPool(): ThreadPool | undefined {
    return this.threadsInUse?.usable ? this.threadsInUse : undefined;
  }

  /**
   * Shares the products with `pool`, whose threads run this engine's kernel
   * build over its memory (threadMemory). If a thread fails, the call that
   * saw it throws a ThreadError and the engine continues on one thread.
   */
  useThreads(pool: ThreadPool): void {
    if (pool.size !== this.threadMemory.count) throw new RangeError(`a pool of ${pool.size} threads for a layout of ${this.threadMemory.count}`);
    this.threadsInUse = pool;
    this.threadNote = `; ${pool.size} threads`;
  }

  /** Whatever the engine asked for with the thread count left unused, said in its name. */
  noteThreads(note: string): void {
    this.threadNote = `; ${note}`;
  }

  /** Stops the threads (the engine goes on with one). */
  async close(): Promise<void> {
    const pool = this.threadsInUse;
    if (!pool) return;
    this.threadsInUse = undefined;
    this.threadNote = pool.usable ? "" : this.threadNote;
    await pool.close();
  }

  /** A new, empty sequence; it takes KV blocks as it is written (kv-cache.ts). */
  newSequence(): WasmSequence {
    return this.pool.acquire();
  }

  liveStats(): EngineStats {
    return { kv: this.pool.stats };
  }

  memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  releaseSequence(seq: unknown): void {
    if (seq instanceof WasmSequence && seq.pool === this.pool) seq.release();
  }

  /** A new sequence takes the cached KV blocks of the start of `prompt`; returns the positions it now holds (feed the rest from there). */
  reusePrefix(seq: unknown, prompt: readonly number[]): number {
    return this.pool.reusePrefix(seq, prompt);
  }

  /**
   * Feeds `tokens` at positions startPos.. (each layer's cache is rewound to
   * startPos first, as the reference does) and returns the logits of the last
   * position, or of every position with `allLogits`.
   */
  forward(seq: unknown, tokens: number[], startPos?: number, opts: ForwardOptions = {}): Float32Array[] {
    return this.forwardBatch([{ seq, tokens, startPos, ...opts }])[0];
  }

  /**
   * One step for several sequences: each entry's tokens at its own positions,
   * as forward() would feed them alone, with the rows of all entries sharing
   * every matrix product (chunks of up to prefillChunk rows; an entry longer
   * than what is left of a chunk continues in the next). Returns each entry's
   * logits as forward() would. Everything is checked before any cache is
   * touched; a sequence may appear once per step.
   */
  forwardBatch(entries: readonly BatchEntry[]): Float32Array[][] {
    const { hiddenSize: H, numLayers } = this.config;
    // A shard's engine holds only part of the model: refuse before a cache is touched.
    this.embedTable();
    this.head();
    const seqs = new Set<WasmSequence>();
    const plan = entries.map((e, i) => {
      const seq = this.pool.use(e.seq);
      if (seqs.has(seq)) throw new RangeError(`batch entry ${i}: the same sequence twice in one step`);
      seqs.add(seq);
      if (e.tokens.length === 0) throw new RangeError(entries.length > 1 ? `batch entry ${i}: no tokens` : "forward: no tokens");
      this.checkTokens(e.tokens);
      const pos0 = e.startPos ?? seq.length(0);
      this.checkRange(seq, pos0, e.tokens.length, 0, numLayers);
      const allLogits = e.allLogits ?? false;
      const into = !allLogits && e.into?.length === this.head().output.rows ? e.into : undefined;
      return { seq, pos0, tokens: e.tokens, allLogits, into };
    });
    for (const p of plan) this.pool.prepareWrite(p.seq, p.pos0, p.tokens.length, seqs);
    for (const p of plan) {
      if (!p.seq.tokens) continue;
      p.seq.tokens.length = p.pos0;
      p.seq.tokens.push(...p.tokens);
    }

    const out: Float32Array[][] = entries.map(() => []);
    const C = this.prefillChunk;
    let entry = 0; // the entry whose next token is the next row
    let done = 0; //  tokens of it already fed
    while (entry < plan.length) {
      const segments: Segment[] = [];
      const wanted: { row: number; entry: number }[] = [];
      let m = 0;
      while (m < C && entry < plan.length) {
        const p = plan[entry];
        const take = Math.min(C - m, p.tokens.length - done);
        for (let t = 0; t < take; t++) {
          this.embedRow(p.tokens[done + t], this.X + (m + t) * H * F32);
          if (p.allLogits || done + t === p.tokens.length - 1) wanted.push({ row: m + t, entry });
        }
        segments.push({ seq: p.seq, pos0: p.pos0 + done, row: m, m: take });
        m += take;
        done += take;
        if (done === p.tokens.length) [entry, done] = [entry + 1, 0];
      }
      // The last layer runs only the rows whose logits are wanted past its keys and values; they end up first in X.
      this.layers(segments, m, 0, numLayers, wanted.map((w) => w.row));
      for (const s of segments) this.pool.recordPrefix(s.seq, s.pos0 + s.m);
      const logits = this.logits(wanted.map((_, i) => this.X + i * H * F32), wanted.map((w) => plan[w.entry].into));
      wanted.forEach((w, i) => out[w.entry].push(logits[i]));
    }
    return out;
  }

  /**
   * Runs layers [firstLayer, endLayer) over n positions in place: hidden is
   * [n × H], position i is startPos + i. Those layers' caches are rewound to
   * startPos, then extended by n. For layer-range shards (docs/sharding.md).
   */
  forwardLayers(seqArg: unknown, startPos: number, hidden: Float32Array, firstLayer: number, endLayer: number): void {
    const H = this.config.hiddenSize;
    if (hidden.length === 0 || hidden.length % H !== 0) throw new RangeError(`hidden has ${hidden.length} values, not a positive multiple of ${H}`);
    this.forwardLayersBatch([{ seq: seqArg, startPos, n: hidden.length / H }], hidden, firstLayer, endLayer);
  }

  /**
   * forwardLayers for several sequences in one pass, so a layer shard reads
   * its weights once per step for all of them: hidden is the parts' rows one
   * after the other ([Σn × H]), part i at positions startPos.. of its own
   * sequence. The rows of all parts share every product (chunks of up to
   * prefillChunk rows, as forwardBatch does); each part's bits are those it
   * gets alone. Everything is checked, and every KV block the parts need is
   * taken, before any cache is written: a KVBudgetError leaves every
   * sequence as it was.
   */
  forwardLayersBatch(parts: readonly { seq: unknown; startPos: number; n: number }[], hidden: Float32Array, firstLayer: number, endLayer: number): void {
    const H = this.config.hiddenSize;
    const seqs = new Set<WasmSequence>();
    let rows = 0;
    const plan = parts.map((p, i) => {
      const seq = this.pool.use(p.seq);
      if (seqs.has(seq)) throw new RangeError(`part ${i}: the same sequence twice in one step`);
      seqs.add(seq);
      if (!Number.isInteger(p.n) || p.n < 1) throw new RangeError(`part ${i}: ${p.n} positions`);
      this.checkRange(seq, p.startPos, p.n, firstLayer, endLayer);
      rows += p.n;
      return { seq, pos0: p.startPos, n: p.n };
    });
    if (hidden.length !== rows * H) throw new RangeError(`hidden has ${hidden.length} values for ${rows} positions of ${H}`);
    // A step that cannot fit even alone is refused before it evicts anyone to make room.
    const need = plan.reduce((a, p) => a + this.pool.blocksFor(p.pos0 + p.n), 0);
    if (need > this.pool.layout.blocks) {
      throw new KVBudgetError(`the KV cache is too small for this step: its ${plan.length} sequences need ${need} blocks of ${this.pool.layout.blockPositions} positions and the pool has ${this.pool.layout.blocks} (raise the KV budget or run fewer at once)`);
    }
    for (const p of plan) this.pool.prepareWrite(p.seq, p.pos0, p.n, seqs);
    for (const p of plan) p.seq.tokens = null; // hidden states, not tokens: nothing here can key the prefix cache
    const C = this.prefillChunk;
    let part = 0; // the part whose next position is the next row
    let done = 0; //  positions of it already run
    for (let row0 = 0; row0 < rows; ) {
      const segments: Segment[] = [];
      let m = 0;
      while (m < C && part < plan.length) {
        const p = plan[part];
        const take = Math.min(C - m, p.n - done);
        segments.push({ seq: p.seq, pos0: p.pos0 + done, row: m, m: take });
        m += take;
        done += take;
        if (done === p.n) [part, done] = [part + 1, 0];
      }
      this.mem().set(hidden.subarray(row0 * H, (row0 + m) * H), this.X / F32);
      this.layers(segments, m, firstLayer, endLayer);
      hidden.set(this.mem().subarray(this.X / F32, this.X / F32 + m * H), row0 * H);
      row0 += m;
    }
  }

  /** token ids → embedding rows [n × H] (the input of forwardLayers). */
  embed(tokens: number[]): Float32Array {
    const H = this.config.hiddenSize;
    this.checkTokens(tokens);
    const out = new Float32Array(tokens.length * H);
    tokens.forEach((t, i) => {
      this.embedRow(t, this.XN);
      out.set(this.mem().subarray(this.XN / F32, this.XN / F32 + H), i * H);
    });
    return out;
  }

  /** Final LayerNorm and LM head of one hidden vector [H] → logits [R] (the vocabulary, or a head shard's slice of it). */
  logitsOf(hidden: Float32Array): Float32Array {
    const H = this.config.hiddenSize;
    if (hidden.length !== H) throw new RangeError(`hidden has ${hidden.length} values, expected ${H}`);
    return this.logitsOfRows(hidden)[0];
  }

  /** logitsOf for hidden [n × H], n ≥ 1: up to logitsBatch rows share each head product (a head shard serves a batched step's rows at once). */
  logitsOfRows(hidden: Float32Array): Float32Array[] {
    const H = this.config.hiddenSize;
    if (hidden.length === 0 || hidden.length % H !== 0) throw new RangeError(`hidden has ${hidden.length} values, not a positive multiple of ${H}`);
    const n = hidden.length / H;
    const out: Float32Array[] = [];
    for (let r0 = 0; r0 < n; r0 += this.prefillChunk) {
      const m = Math.min(this.prefillChunk, n - r0);
      this.mem().set(hidden.subarray(r0 * H, (r0 + m) * H), this.X / F32);
      out.push(...this.logits(Array.from({ length: m }, (_, i) => this.X + i * H * F32)));
    }
    return out;
  }

  // ------------------------------------------------------------------ internals

  private mem(): Float32Array {
    if (this.f32view.buffer !== this.memory.buffer) this.f32view = new Float32Array(this.memory.buffer); // memory grew: old view detached
    return this.f32view;
  }

  private checkTokens(tokens: number[]): void {
    const { vocabSize } = this.config;
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`token id ${t} is outside the vocabulary (0..${vocabSize - 1})`);
    }
  }

  private checkRange(seq: WasmSequence, pos0: number, n: number, first: number, end: number): void {
    const [held0, held1] = this.heldLayers;
    if (!Number.isInteger(first) || !Number.isInteger(end) || first < held0 || end > held1 || first >= end) {
      throw new RangeError(`bad layer range [${first}, ${end}) (the engine holds layers [${held0}, ${held1}) of ${this.config.numLayers})`);
    }
    if (!Number.isInteger(pos0) || pos0 < 0) throw new RangeError(`startPos must be a non-negative integer, got ${pos0}`);
    if (pos0 + n > this.contextLength) {
      throw new RangeError(`positions up to ${pos0 + n} exceed the context length ${this.contextLength}`);
    }
    for (let l = first; l < end; l++) {
      if (pos0 > seq.lengths[l]) throw new RangeError(`layer ${l} caches ${seq.lengths[l]} positions; cannot start at ${pos0}`);
    }
  }

  private embedTable(): WasmMatrix {
    if (!this.weights.embed) throw new Error("this engine holds no embedding table (a shard is handed hidden states)");
    return this.weights.embed;
  }

  private head(): Head<WasmMatrix, number> {
    const { outputNorm, output } = this.weights;
    if (!outputNorm || !output) throw new Error("this engine holds no output head (a layer shard)");
    return { outputNorm, output };
  }

  /** One token's embedding row → f32 [H] at dst. The table stays in the file's type. */
  private embedRow(token: number, dst: number): void {
    const e = this.embedTable();
    const H = e.cols;
    const { blockSize, blockBytes } = layoutOf(e.type);
    const src = e.ptr + token * (H / blockSize) * blockBytes;
    const k = this.k;
    switch (e.type) {
      case TensorType.F32: this.mem().copyWithin(dst / F32, src / F32, src / F32 + H); break;
      case TensorType.F16: k.f16_to_f32(src, dst, H); break;
      case TensorType.BF16: k.bf16_to_f32(src, dst, H); break;
      case TensorType.Q8_0: k.dequant_q8_0(src, dst, H); break;
      case TensorType.Q4_0: k.dequant_q4_0(src, dst, H); break;
      case TensorType.Q6_K: k.dequant_q6_k(src, dst, H); break;
      case TensorType.Q4_K: k.dequant_q4_k(src, dst, H); break;
      case TensorType.Q5_K: k.dequant_q5_k(src, dst, H); break;
      case TensorType.Q2_K: k.dequant_q2_k(src, dst, H); break;
      case TensorType.Q3_K: k.dequant_q3_k(src, dst, H); break;
      case TensorType.Q4_1: k.dequant_q4_1(src, dst, H); break;
      case TensorType.Q5_0: k.dequant_q5_0(src, dst, H); break;
      case TensorType.Q5_1: k.dequant_q5_1(src, dst, H); break;
      default: throw new Error(`embedding type ${e.type} unsupported`);
    }
  }

  /**
   * The transformer layers [first, end) over the m ≤ C rows of X, which are the segments' positions of their sequences.
   * With `keep` (rows of the chunk, ascending), the last layer computes every row's keys and values (the cache needs
   * them) but the rest of the layer only for the kept rows, which it moves to rows 0.. of X first: only they feed the
   * LM head, and no later layer reads the others (a prompt's rows but its last skip ~3% of its products). Each kept
   * row's arithmetic is what it would get with all rows (a row's does not depend on the rows beside it).
   */
  private layers(segments: readonly Segment[], m: number, first: number, end: number, keep?: readonly number[]): void {
    const cfg = this.config;
    const { hiddenSize: H, intermediateSize: F, numHeads, numKVHeads, headDim, layerNormEps: eps } = cfg;
    const kvDim = numKVHeads * headDim;
    const { X, A, Q, K, Vv, ATT, O, M, G, U, D } = this;
    const at = (buf: number, cols: number, row: number) => buf + row * cols * F32;
    const norm = (x: number, n: { weight: number; bias: number }, out: number, t0: number, t1: number): Call => ({
      op: "layernorm",
      args: [at(x, H, t0), n.weight, n.bias, at(out, H, t0), H, t1 - t0, eps],
    });
    const add = (a: number, b: number, t0: number, t1: number): Call => ({ op: "add_f32", args: [at(a, H, t0), at(b, H, t0), at(a, H, t0), (t1 - t0) * H] });
    // A layer's last step, run with the next layer's first: one job fewer per layer.
    const residual = (l: number, t0: number, t1: number): Call[] => [add(X, D, t0, t1), ...(this.weights.layers[l].ffnNorm ? [] : [add(X, O, t0, t1)])];
    let tables = this.blockTables(segments);

    for (let l = first; l < end; l++) {
      const w = this.weights.layers[l];
      const qkv = [w.q, w.k, w.v];
      // Whether this layer drops rows: only the kept ones need their queries and everything after them.
      const prune = keep !== undefined && l === end - 1 && keep.length < m;

      // Attention block.
      this.positions(m, (t0, t1) => [...(l > first ? residual(l - 1, t0, t1) : []), norm(X, w.attnNorm, A, t0, t1), ...this.quantizeCalls(A, H, m, t0, t1, qkv)]);
      this.products(A, m, ...(prune ? [] : [{ w: w.q, out: Q }]), { w: w.k, out: K }, { w: w.v, out: Vv });
      this.positions(m, (t0, t1) => [
        ...(prune ? [] : this.queryCalls(w, segments, t0, t1)),
        ...this.addRows(K, w.kBias, t0, t1, kvDim),
        ...this.addRows(Vv, w.vBias, t0, t1, kvDim),
        ...(w.kNorm !== undefined ? this.headNorm(K, t0, t1, numKVHeads, w.kNorm) : []),
        ...segments.flatMap((s) => this.ropeAndStore(s, l, Math.max(t0, s.row), Math.min(t1, s.row + s.m))),
      ]);
      for (const s of segments) s.seq.lengths[l] = s.pos0 + s.m;
      if (prune) {
        this.moveRows(keep, H, X, A); // A: the queries' input, and the MLP's in a parallel layer
        segments = keptSegments(segments, keep);
        m = keep.length;
        if (m === 0) return;
        tables = this.blockTables(segments);
        // The same readers as above, so the activations are quantized to the same grain.
        this.positions(m, (t0, t1) => this.quantizeCalls(A, H, m, t0, t1, qkv));
        this.products(A, m, { w: w.q, out: Q });
        this.positions(m, (t0, t1) => this.queryCalls(w, segments, t0, t1));
      }
      const { pool } = this;
      const kv = { kOff: pool.offset(l, 0), vOff: pool.offset(l, 1), headBytes: pool.headBytes, blockPositions: pool.layout.blockPositions };
      this.dispatch(attentionChunks({ q: Q, out: ATT, ...kv, numHeads, numKVHeads, headDim, segments: tables }, this.threads));
      this.positions(m, (t0, t1) => this.quantizeCalls(ATT, H, m, t0, t1, [w.o]));
      this.products(ATT, m, { w: w.o, out: O });

      // MLP block: sequential (1.6B) reads LayerNorm(h + attn); parallel (12B) reads A.
      const ffnNorm = w.ffnNorm;
      const mlpIn = ffnNorm ? M : A;
      this.positions(m, (t0, t1) => [...(ffnNorm ? [add(X, O, t0, t1), norm(X, ffnNorm, M, t0, t1)] : []), ...this.quantizeCalls(mlpIn, H, m, t0, t1, [w.gate, w.up])]);
      this.products(mlpIn, m, { w: w.gate, out: G }, { w: w.up, out: U });
      this.positions(m, (t0, t1) => [
        { op: "silu_mul", args: [at(G, F, t0), at(U, F, t0), at(G, F, t0), (t1 - t0) * F] },
        ...this.quantizeCalls(G, F, m, t0, t1, [w.down]),
      ]);
      this.products(G, m, { w: w.down, out: D });
    }
    this.positions(m, (t0, t1) => residual(end - 1, t0, t1));
  }

  /** Rows `rows` (ascending) of each [C × cols] f32 buffer to rows 0.. of it; rows[i] ≥ i, so none is overwritten before it moves. */
  private moveRows(rows: readonly number[], cols: number, ...buffers: number[]): void {
    const f = this.mem();
    for (const buf of buffers) {
      rows.forEach((r, i) => {
        if (r !== i) f.copyWithin(buf / F32 + i * cols, buf / F32 + r * cols, buf / F32 + (r + 1) * cols);
      });
    }
  }

  /** Rows t0..t1−1 of Q, which are the segments' positions: the query bias, the 12B's qk-norm, and rotary at each row's position. */
  private queryCalls(w: WasmWeights["layers"][number], segments: readonly Segment[], t0: number, t1: number): Call[] {
    const { hiddenSize: H, numHeads, headDim, rotaryDim, ropeTheta } = this.config;
    const rope = segments.flatMap((s): Call[] => {
      const [r0, r1] = [Math.max(t0, s.row), Math.min(t1, s.row + s.m)];
      if (r0 >= r1) return [];
      const q = this.Q + r0 * H * F32; // [n × H] f32
      return [{ op: "rope_neox", args: [q, H, r1 - r0, numHeads, headDim, rotaryDim, s.pos0 + (r0 - s.row), ropeTheta] }];
    });
    return [...this.addRows(this.Q, w.qBias, t0, t1, H), ...(w.qNorm !== undefined ? this.headNorm(this.Q, t0, t1, numHeads, w.qNorm) : []), ...rope];
  }

  /** Each segment's block table (the addresses of its sequence's KV blocks, [ctx/P] u32) into TABLE, one after the other. */
  private blockTables(segments: readonly Segment[]): AttentionSegment[] {
    const { pool } = this;
    const stride = Math.ceil(this.contextLength / pool.layout.blockPositions);
    return segments.map((s, i) => {
      const table = this.TABLE + i * stride * 4;
      const words = new Uint32Array(this.memory.buffer, table, s.seq.blocks.length);
      s.seq.blocks.forEach((b, j) => (words[j] = pool.blockAddr(b)));
      return { row: s.row, m: s.m, pos0: s.pos0, table };
    });
  }

  /**
   * Rows r0..r1−1 of the chunk, which are segment s's (none when r0 ≥ r1):
   * rotary on their keys at their positions (the queries' is in queryCalls),
   * and their keys and values into the cache — positions pos0.. are
   * (re)written: this is the rewind — a block's run of positions per call
   * (./kv-cache.ts).
   */
  private ropeAndStore(s: Segment, l: number, r0: number, r1: number): Call[] {
    if (r0 >= r1) return [];
    const { numKVHeads, headDim, rotaryDim, ropeTheta } = this.config;
    const kvDim = numKVHeads * headDim;
    const { pool } = this;
    const P = pool.layout.blockPositions;
    const pos0 = s.pos0 + (r0 - s.row);
    const n = r1 - r0;
    const kNew = this.K + r0 * kvDim * F32; //  [n × KV] f32
    const vNew = this.Vv + r0 * kvDim * F32; // [n × KV] f32
    const calls: Call[] = [{ op: "rope_neox", args: [kNew, kvDim, n, numKVHeads, headDim, rotaryDim, pos0, ropeTheta] }];
    for (let p = pos0; p < pos0 + n; ) {
      const run = Math.min(P - (p % P), pos0 + n - p);
      const block = pool.blockAddr(s.seq.blocks[Math.floor(p / P)]);
      const row = (p - pos0) * kvDim * F32;
      for (const [x, which] of [[kNew, 0], [vNew, 1]] as const) {
        calls.push({ op: "store_kv_f16", args: [x + row, block + pool.offset(l, which), p % P, run, numKVHeads, headDim, pool.headBytes] });
      }
      p += run;
    }
    return calls;
  }

  /**
   * Each hidden [H] at rows[i] → its logits [R], copied out of WASM memory
   * (into into[i] where the caller gave one, else a new array);
   * up to logitsBatch positions per head product, so the head's weights are
   * read once for all the sequences of a step.
   */
  private logits(rows: readonly number[], into: readonly (Float32Array | undefined)[] = []): Float32Array[] {
    const { hiddenSize: H, layerNormEps } = this.config;
    const { outputNorm, output } = this.head();
    const R = output.rows;
    const out: Float32Array[] = [];
    for (let i0 = 0; i0 < rows.length; i0 += this.logitsBatch) {
      const b = Math.min(this.logitsBatch, rows.length - i0);
      for (let i = 0; i < b; i++) this.k.layernorm(rows[i0 + i], outputNorm.weight, outputNorm.bias, this.XN + i * H * F32, H, 1, layerNormEps);
      this.quantize(this.XN, b, H, [output]);
      this.products(this.XN, b, { w: output, out: this.LOGITS });
      for (let i = 0; i < b; i++) {
        const row = this.mem().subarray(this.LOGITS / F32 + i * R, this.LOGITS / F32 + (i + 1) * R);
        const dst = into[i0 + i];
        out.push(dst ? (dst.set(row), dst) : row.slice());
      }
    }
    return out;
  }

  /** x [m × cols] → Q8 (Q8A when m = 1, else Q8B), for the quantized products that follow (the matrices that read it). */
  private quantize(x: number, m: number, cols: number, readers: readonly WasmMatrix[]): void {
    if (!this.weights.quantized) return;
    const k = this.grainFor(readers) === 256;
    if (m === 1) (k ? this.k.quantize_q8a_k : this.k.quantize_q8a)(x, cols, this.Q8);
    else (k ? this.k.quantize_q8b_k : this.k.quantize_q8b)(x, cols, m, this.Q8);
  }

  /** Rows t0..t1−1 of x [m × cols] → their part of Q8 (Q8A when m = 1, else Q8B), for the quantized products that follow (the matrices that read it). */
  private quantizeCalls(x: number, cols: number, m: number, t0: number, t1: number, readers: readonly WasmMatrix[]): Call[] {
    if (!this.weights.quantized) return [];
    const grain = this.grainFor(readers);
    if (m === 1) return [{ op: grain === 256 ? "quantize_q8a_k" : "quantize_q8a", args: [x, cols, this.Q8] }];
    return quantizeCalls(x, cols, m, t0, t1, this.q8, grain);
  }

  /**
   * The activation grain for these readers, which Q8 then holds: 256 when
   * any of them is a Q4_K / Q5_K matrix (the others read it as well), else
   * 32, so the files without those kinds keep their activations bit for bit.
   */
  private grainFor(readers: readonly WasmMatrix[]): 32 | 256 {
    this.q8Grain = readers.some((w) => needsGrain256(w.kind)) ? 256 : 32;
    return this.q8Grain;
  }

  /** One position x [cols] → Q8ROW, in the grain w's own product needs (the per-position fallbacks, which quantize for one matrix). */
  private quantizeRow(w: WasmMatrix, x: number): void {
    (needsGrain256(w.kind) ? this.k.quantize_q8a_k : this.k.quantize_q8a)(x, w.cols, this.Q8ROW);
  }

  /** A Q4_K / Q5_K product over Q8 that was quantized for other readers would be silently wrong: refuse it. */
  private checkGrain(w: WasmMatrix): void {
    if (needsGrain256(w.kind) && this.q8Grain !== 256) {
      throw new Error(`internal: a ${w.kind} product over activations with one scale per ${this.q8Grain} values (it needs 256)`);
    }
  }

  /**
   * The calls `calls(t0, t1)` makes for rows t0..t1−1 of the chunk, over rows
   * [0, m): on one thread in one range, with the pool in ranges that the
   * threads claim (./position-split.ts).
   */
  private positions(m: number, calls: (t0: number, t1: number) => Call[]): void {
    this.dispatch(positionRanges(m, this.threads).map(([t0, t1]) => calls(t0, t1)));
  }

  /** Runs the chunks on the pool's threads, or here when there is no pool or a single chunk (waking the threads for it would cost more than it). */
  private dispatch(chunks: Chunk[]): void {
    const pool = this.threadsInUse;
    if (!pool?.usable || chunks.length === 1) {
      const own = { tile: this.threadMemory.tiles[0], scores: this.SCORES };
      for (const chunk of chunks) runChunk(this.k, this.memory, chunk, own);
      return;
    }
    try {
      pool.run(chunks);
    } catch (e) {
      if (e instanceof ThreadError) this.threadNote = `; 1 thread (${pool.reason})`;
      throw e;
    }
  }

  /**
   * Each product's out [m × rows] = x [m × cols] · Wᵀ, one after the other
   * on one thread, or in one job over the pool's threads (chunks of rows of
   * every product, claimed by whichever thread is free). Quantized kinds read the Q8 form of x made by
   * quantize(); float kinds read x itself.
   */
  private products(x: number, m: number, ...products: Product[]): void {
    const pool = this.threadsInUse;
    if (!pool?.usable) {
      for (const p of products) this.linear(p.w, x, m, p.out);
      return;
    }
    const perPosition = m > 1 && m < MATMUL_MIN_ROWS ? products.filter((p) => isQuantized(p.w.kind)) : [];
    const together = products.filter((p) => !perPosition.includes(p));
    const { tileBytes } = this.threadMemory;
    for (const p of together) this.checkGrain(p.w);
    if (together.length) this.dispatch(splitProducts(together, { x, xq: this.Q8, m, tileBytes }, pool.size));
    for (const { w, out } of perPosition) {
      for (let t = 0; t < m; t++) {
        const xt = x + t * w.cols * F32;
        this.quantizeRow(w, xt);
        this.dispatch(splitProducts([{ w, out: out + t * w.rows * F32 }], { x: xt, xq: this.Q8ROW, m: 1, tileBytes }, pool.size));
      }
    }
  }

  /** out [m × rows] = x [m × cols] · Wᵀ on this thread. */
  private linear(w: WasmMatrix, x: number, m: number, out: number): void {
    const k = this.k;
    const { rows, cols, ptr } = w;
    switch (w.kind) {
      case "q4r":
      case "q8r":
      case "q6r":
      case "q4kr":
      case "q5kr":
      case "q2kr":
      case "q3kr":
      case "q41r":
      case "q50r":
      case "q51r": {
        const [mv, mm] = QUANT_KERNELS[w.kind];
        const matvec: KernelExports["matvec_q4r_q8a"] = k[mv];
        const matmul: KernelExports["matmul_q4r_q8b"] | undefined = k[mm];
        if (m === 1 || m >= MATMUL_MIN_ROWS) this.checkGrain(w);
        if (m === 1) matvec(ptr, rows, cols, this.Q8, out);
        else if (matmul && m >= MATMUL_MIN_ROWS) matmul(ptr, rows, cols, this.Q8, m, out);
        else {
          // Fewer positions than MATMUL_MIN_ROWS: a matrix-vector product per position.
          for (let t = 0; t < m; t++) {
            this.quantizeRow(w, x + t * cols * F32);
            matvec(ptr, rows, cols, this.Q8ROW, out + t * rows * F32);
          }
        }
        return;
      }
      case "f32":
      case "f16":
      case "bf16": {
        const mv = w.kind === "f32" ? k.matvec_f32 : w.kind === "f16" ? k.matvec_f16 : k.matvec_bf16;
        for (let t = 0; t < m; t++) mv(ptr, rows, cols, x + t * cols * F32, out + t * rows * F32);
        return;
      }
    }
  }

  /** Rows t0..t1−1 of x [m × n] += b [n] (none without a bias). */
  private addRows(x: number, b: number | undefined, t0: number, t1: number, n: number): Call[] {
    if (b === undefined) return [];
    const calls: Call[] = [];
    for (let t = t0; t < t1; t++) {
      const row = x + t * n * F32;
      calls.push({ op: "add_f32", args: [row, b, row, n] });
    }
    return calls;
  }

  /** 12B qk-norm, rows t0..t1−1: each head vector [headDim] of x [m × heads × headDim] normalised alone, times its head's weights, no bias. */
  private headNorm(x: number, t0: number, t1: number, heads: number, weight: number): Call[] {
    const { headDim, layerNormEps } = this.config;
    const calls: Call[] = [];
    for (let t = t0; t < t1; t++) {
      for (let h = 0; h < heads; h++) {
        const p = x + (t * heads + h) * headDim * F32;
        calls.push({ op: "layernorm", args: [p, weight + h * headDim * F32, this.weights.zeros, p, headDim, 1, layerNormEps] });
      }
    }
    return calls;
  }
}
