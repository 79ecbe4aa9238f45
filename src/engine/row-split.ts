/**
 * How a matrix product is shared between threads: by rows of the weight
 * matrix. A chunk computes whole output rows with the same kernel, on its
 * own slice of the weights, so every row's arithmetic — and every bit of the
 * result — is what one thread computes, whichever thread runs the chunk, and
 * the threads stream disjoint parts of the weights (decode is limited by
 * reading them). Chunks are whole 4-row groups: Q4R, Q6R, Q4KR and Q5KR interleave four
 * rows, and the kernels handle rows four at a time, so a chunk that starts
 * on a group boundary groups every row exactly as one call over all rows
 * does. A few chunks per thread and product, claimed as the threads come
 * (./thread-pool.ts), even out threads that start late or run slower.
 *
 * A matrix-vector product's rows are contiguous in the output, so a chunk
 * writes its rows in place. The prefill matmul kernels write out[t·rows + r]
 * with their own row count as the stride, so a chunk writes its [m × rows]
 * block into the running thread's tile (the layout's ThreadRegions) and
 * copies the rows into place.
 */
import { layoutOf } from "../gguf/quant";
import { isQuantized, rowOffset } from "./kernel-sizes";
import type { WasmMatrix } from "./load";
import { TILE, type Chunk } from "./thread-pool";

const F32 = 4;

/** Chunks per thread and product (or step between products): enough for a late thread's share to be taken over, few enough to cost nothing. */
export const CHUNKS_PER_THREAD = 4;

/** Rows [r0, r1) of share i of `shares`: whole groups of `group` rows, as even as the groups allow. */
export function shareRows(rows: number, shares: number, i: number, group = 4): [number, number] {
  const groups = Math.ceil(rows / group);
  const g0 = Math.floor((groups * i) / shares);
  const g1 = Math.floor((groups * (i + 1)) / shares);
  return [Math.min(rows, g0 * group), Math.min(rows, g1 * group)];
}

/** The largest share of `rows` rows in `shares` (no chunk is larger when there are at least as many chunks: a tile holds that many rows per position). */
export function shareRowsMax(rows: number, shares: number): number {
  return Math.ceil(Math.ceil(rows / 4) / shares) * 4;
}

/** out [m × w.rows] = x [m × w.cols] · Wᵀ. */
export interface Product {
  w: WasmMatrix;
  out: number;
}

export interface ProductInput {
  /** f32 [m × cols], read by the float kernels. */
  x: number;
  /** Its Q8A (m = 1) or Q8B form, read by the quantized kernels. */
  xq: number;
  m: number;
  /** Bytes of each thread's tile: a matmul chunk's [m × rows] output must fit (the LM head over a batch has far more rows than a layer product). */
  tileBytes: number;
}

/**
 * The chunks of the products for `threads` threads: each a kernel call on a
 * range of rows (a matmul's followed by the copy out of the tile).
 */
export function splitProducts(products: readonly Product[], input: ProductInput, threads: number): Chunk[] {
  const { x, xq, m, tileBytes } = input;
  const chunks: Chunk[] = [];
  for (const { w, out } of products) {
    const { blockSize, blockBytes } = layoutOf(w.type);
    const rowBytes = (w.cols / blockSize) * blockBytes;
    const quantized = isQuantized(w.kind);
    const groups = Math.ceil(w.rows / 4);
    let shares = Math.min(groups, threads * CHUNKS_PER_THREAD);
    if (m > 1 && quantized) {
      const tileGroups = Math.floor(tileBytes / (m * F32 * 4));
      if (tileGroups < 1) throw new RangeError(`a tile of ${tileBytes} bytes cannot hold 4 rows of ${m} positions`);
      shares = Math.max(shares, Math.ceil(groups / tileGroups));
    }
    for (let i = 0; i < shares; i++) {
      const [r0, r1] = shareRows(w.rows, shares, i);
      const n = r1 - r0;
      const wp = w.ptr + rowOffset(w.kind, r0, w.cols, rowBytes);
      if (m === 1) {
        chunks.push([{ op: matvecOp(w), args: [wp, n, w.cols, quantized ? xq : x, out + r0 * F32] }]);
      } else if (quantized) {
        const op = matmulOp(w);
        chunks.push([
          { op, args: [wp, n, w.cols, xq, m, TILE] },
          { op: "copy", args: [TILE, out + r0 * F32, n * F32, m, n * F32, w.rows * F32] },
        ]);
      } else {
        for (let t = 0; t < m; t++) chunks.push([{ op: matvecOp(w), args: [wp, n, w.cols, x + t * w.cols * F32, out + (t * w.rows + r0) * F32] }]);
      }
    }
  }
  return chunks;
}

function matmulOp(w: WasmMatrix): Chunk[number]["op"] {
  switch (w.kind) {
    case "q4r": return "matmul_q4r_q8b";
    case "q8r": return "matmul_q8r_q8b";
    case "q6r": return "matmul_q6r_q8b";
    case "q4kr": return "matmul_q4kr_q8b";
    case "q5kr": return "matmul_q5kr_q8b";
    case "q2kr": return "matmul_q2kr_q8b";
    case "q3kr": return "matmul_q3kr_q8b";
    case "q41r": return "matmul_q41r_q8b";
    case "q50r": return "matmul_q50r_q8b";
    case "q51r": return "matmul_q51r_q8b";
    default: throw new Error(`${w.name}: no matrix-matrix kernel for ${w.kind}`);
  }
}

function matvecOp(w: WasmMatrix): Chunk[number]["op"] {
  switch (w.kind) {
    case "q4r": return "matvec_q4r_q8a";
    case "q4kr": return "matvec_q4kr_q8a";
    case "q5kr": return "matvec_q5kr_q8a";
    case "q2kr": return "matvec_q2kr_q8a";
    case "q3kr": return "matvec_q3kr_q8a";
    case "q41r": return "matvec_q41r_q8a";
    case "q50r": return "matvec_q50r_q8a";
    case "q51r": return "matvec_q51r_q8a";
    case "q8r": return "matvec_q8r_q8a";
    case "q6r": return "matvec_q6r_q8a";
    case "f32": return "matvec_f32";
    case "f16": return "matvec_f16";
    case "bf16": return "matvec_bf16";
  }
}
