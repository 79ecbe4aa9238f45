/**
 * How the work between a layer's matrix products is shared between threads
 * (./thread-pool.ts): by rows of the chunk (positions, of one sequence or of
 * several in a batched step), and attention by sequence and KV heads.
 * LayerNorm, the biases, rotary, the KV store, SiLU, the residual adds and
 * quantizing the next product's input each compute a row from that row
 * alone, so a chunk of whole rows gives the bits one call over all of them
 * gives, whichever thread runs it and however the rows are cut. Attention
 * reads every cached position up to its own, so it runs after the KV store
 * (a job of its own) and is cut by sequence and ranges of KV heads and,
 * where there are fewer heads than chunks wanted, by positions, each chunk
 * with the running thread's scores buffer.
 *
 * Row ranges are whole groups of 8: Q8B keeps rows in groups of 4 (the
 * relaxed build's second copy in groups of 8), so a chunk quantizes its rows
 * alone into the thread's tile and copies whole groups into place
 * (kernel-sizes.ts, q8bPieces). With one range (one thread, or too few rows)
 * the calls are those over all rows, straight into place.
 */
import type { BuildKind } from "./kernels";
import { q8bPieces } from "./kernel-sizes";
import { CHUNKS_PER_THREAD, shareRows } from "./row-split";
import { inTile, SCORES, TILE, type Call, type Chunk } from "./thread-pool";

const F32 = 4;
const GROUP = 8;
/** Rows per chunk at most, so that a chunk's calls (a few per row) fit a job, and its Q8B a tile (./layout.ts). */
export const MAX_CHUNK_POSITIONS = 16;

/** Ranges [t0, t1) covering rows [0, m) for `threads` threads: whole 8-row groups, at most MAX_CHUNK_POSITIONS each. */
export function positionRanges(m: number, threads: number): [number, number][] {
  // One thread (every decode step there): the one range, without the share arithmetic; it runs several times a layer.
  if (threads === 1) return [[0, m]];
  const groups = Math.ceil(m / GROUP);
  const shares = Math.min(groups, Math.max(threads * CHUNKS_PER_THREAD, Math.ceil(m / MAX_CHUNK_POSITIONS)));
  return Array.from({ length: shares }, (_, i) => shareRows(m, shares, i, GROUP));
}

/** Where a range's quantized rows go: the Q8 buffer of the whole batch, for the build whose Q8B layout applies. */
export interface Q8Target {
  build: BuildKind;
  dst: number;
}

/**
 * x [m × cols] rows t0..t1−1 → their place in the Q8B of all m rows at
 * target.dst: straight into place when they are all the rows, otherwise into
 * the running thread's tile, then copied. grain: values per activation scale
 * (256: quantize_q8b_k, for Q4_K / Q5_K products).
 */
export function quantizeCalls(x: number, cols: number, m: number, t0: number, t1: number, target: Q8Target, grain: 32 | 256): Call[] {
  const op = grain === 256 ? "quantize_q8b_k" : "quantize_q8b";
  if (t0 === 0 && t1 === m) return [{ op, args: [x, cols, m, target.dst] }];
  return [
    { op, args: [x + t0 * cols * F32, cols, t1 - t0, TILE] },
    ...q8bPieces(target.build, cols, m, t0, t1).map(([from, to, bytes]): Call => ({ op: "copy", args: [inTile(from), target.dst + to, bytes, 1, 0, 0] })),
  ];
}

/** One sequence's rows of the chunk: rows row..row+m−1 are its positions pos0..pos0+m−1; table: its block table in WASM memory. */
export interface AttentionSegment {
  row: number;
  m: number;
  pos0: number;
  table: number;
}

/** A layer's causal attention, for the chunk's segments, over their paged caches (./kv-cache.ts). */
export interface AttentionInput {
  /** Queries and output, [rows × numHeads·headDim] f32. */
  q: number;
  out: number;
  /** Where the layer's K and V of kv head 0 lie in each block; kv head j is j·headBytes further. */
  kOff: number;
  vOff: number;
  headBytes: number;
  blockPositions: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  segments: readonly AttentionSegment[];
}

/**
 * The attention's chunks for `threads` threads: per segment, one call over a
 * range of KV heads (and the query heads of their groups) and a range of the
 * segment's positions. One thread: one call per segment over every head (the
 * kernel then reads each cache block's heads as one run). More: each
 * segment's heads are cut into ranges for the chunks wanted; with fewer
 * heads than that, each head alone and its positions cut where the cached
 * positions read (pos0 + t + 1 for position t) are about even.
 */
export function attentionChunks(a: AttentionInput, threads: number): Chunk[] {
  const { numHeads, numKVHeads, headDim, segments } = a;
  const group = numHeads / numKVHeads;
  const rowFloats = numHeads * headDim;
  const call = (s: AttentionSegment, j0: number, j1: number, t0: number, t1: number): Call => {
    const off = ((s.row + t0) * rowFloats + j0 * group * headDim) * F32;
    const head = j0 * a.headBytes;
    return {
      op: "attention_f16kv_causal",
      args: [a.q + off, s.table, a.blockPositions, a.kOff + head, a.vOff + head, a.headBytes, a.out + off, t1 - t0, s.pos0 + t0 + 1, j1 - j0, group, headDim, rowFloats, SCORES],
    };
  };
  if (threads === 1) return [segments.map((s) => call(s, 0, numKVHeads, 0, s.m))];
  const wanted = Math.ceil((threads * CHUNKS_PER_THREAD) / segments.length);
  if (wanted <= numKVHeads) {
    return segments.flatMap((s) =>
      Array.from({ length: wanted }, (_, i) => {
        const [j0, j1] = shareRows(numKVHeads, wanted, i, 1);
        return [call(s, j0, j1, 0, s.m)];
      }),
    );
  }
  const perHead = Math.ceil(wanted / numKVHeads);
  return segments.flatMap((s) => {
    const ranges = evenCost(s.m, Math.min(s.m, perHead), (t) => s.pos0 + t + 1);
    return Array.from({ length: numKVHeads }, (_, j) => ranges.map(([t0, t1]) => [call(s, j, j + 1, t0, t1)]));
  }).flat();
}

/** [0, m) cut into at most `parts` non-empty ranges of about even summed cost (costs rising with t): each cut at the position boundary nearest the next even share. */
function evenCost(m: number, parts: number, cost: (t: number) => number): [number, number][] {
  let total = 0;
  for (let t = 0; t < m; t++) total += cost(t);
  const ranges: [number, number][] = [];
  let t0 = 0;
  let sum = 0;
  for (let t = 0; t < m; t++) {
    sum += cost(t);
    if (t === m - 1 || sum + cost(t + 1) / 2 >= (total * (ranges.length + 1)) / parts) {
      ranges.push([t0, t + 1]);
      t0 = t + 1;
    }
  }
  return ranges;
}
