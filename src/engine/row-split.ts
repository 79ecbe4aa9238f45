/**
 * How a matrix product is shared between threads: by rows of the weight
 * matrix. Each thread computes whole output rows with the same kernel, on
 * its own slice of the weights, so every row's arithmetic — and every bit of
 * the result — is what one thread computes, and each thread streams a
 * disjoint part of the weights (decode is limited by reading them). Shares
 * are whole 4-row groups: Q4R and Q6R interleave four rows, and the kernels
 * handle rows four at a time, so a share that starts on a group boundary
 * groups every row exactly as one call over all rows does.
 *
 * A matrix-vector product's rows are contiguous in the output, so a thread
 * writes its rows in place. The prefill matmul kernels write out[t·rows + r]
 * with their own row count as the stride, so a thread writes its [m × share]
 * block into its own tile (the layout's ThreadRegions) and copies the rows
 * into place.
 */
import { layoutOf } from "../gguf/quant";
import type { WasmMatrix } from "./load";
import type { Call } from "./thread-pool";

const F32 = 4;

/** Rows [r0, r1) of thread i of `threads`: whole 4-row groups, as even as the groups allow. */
export function shareRows(rows: number, threads: number, i: number): [number, number] {
  const groups = Math.ceil(rows / 4);
  const g0 = Math.floor((groups * i) / threads);
  const g1 = Math.floor((groups * (i + 1)) / threads);
  return [Math.min(rows, g0 * 4), Math.min(rows, g1 * 4)];
}

/** The largest share of `rows` rows (a tile holds that many per position). */
export function shareRowsMax(rows: number, threads: number): number {
  return Math.ceil(Math.ceil(rows / 4) / threads) * 4;
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
}

/**
 * Per thread, the calls that compute its rows of each product (list i runs
 * on thread i; `tiles[i]` is thread i's tile). Q6R with m > 1 has no
 * matrix-matrix kernel and needs one Q8A per position: the caller runs those
 * a position at a time with m = 1.
 */
export function splitProducts(products: readonly Product[], input: ProductInput, tiles: readonly number[]): Call[][] {
  const threads = tiles.length;
  const { x, xq, m } = input;
  const lists: Call[][] = Array.from({ length: threads }, () => []);
  for (const { w, out } of products) {
    const { blockSize, blockBytes } = layoutOf(w.type);
    // Bytes per row as stored; for Q4R/Q6R, 4 rows take 4 stored rows' bytes, so this also finds a group's start.
    const rowBytes = (w.cols / blockSize) * blockBytes;
    const quantized = w.kind === "q4r" || w.kind === "q8_0" || w.kind === "q6r";
    if (w.kind === "q6r" && m > 1) throw new Error(`${w.name}: Q6R products run one position at a time`);
    for (let i = 0; i < threads; i++) {
      const [r0, r1] = shareRows(w.rows, threads, i);
      const n = r1 - r0;
      if (n === 0) continue;
      const wp = w.ptr + r0 * rowBytes;
      const calls = lists[i];
      if (m === 1) {
        calls.push({ op: matvecOp(w), args: [wp, n, w.cols, quantized ? xq : x, out + r0 * F32] });
      } else if (quantized) {
        const op = w.kind === "q4r" ? "matmul_q4r_q8b" : "matmul_q8_0_q8b";
        calls.push({ op, args: [wp, n, w.cols, xq, m, tiles[i]] });
        calls.push({ op: "copy", args: [tiles[i], out + r0 * F32, n * F32, m, n * F32, w.rows * F32] });
      } else {
        for (let t = 0; t < m; t++) calls.push({ op: matvecOp(w), args: [wp, n, w.cols, x + t * w.cols * F32, out + (t * w.rows + r0) * F32] });
      }
    }
  }
  return lists;
}

function matvecOp(w: WasmMatrix): Call["op"] {
  switch (w.kind) {
    case "q4r": return "matvec_q4r_q8a";
    case "q8_0": return "matvec_q8_0_q8a";
    case "q6r": return "matvec_q6r_q8a";
    case "f32": return "matvec_f32";
    case "f16": return "matvec_f16";
    case "bf16": return "matvec_bf16";
  }
}
