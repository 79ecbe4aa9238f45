/**
 * Byte sizes of the kernels' memory layouts (docs/kernels.md) as pure
 * functions, so the engine's memory can be laid out (./layout.ts) without
 * instantiating wasm — the shard planner never does. They restate
 * assembly/'s `q8a_bytes`, `q8b_bytes`, `q4r_bytes`, `q8r_bytes`, `q6r_bytes`,
 * `q4kr_bytes`, `q5kr_bytes`, `q2kr_bytes`, `q3kr_bytes` and `scratch_bytes`, and are the only statement of them on the TypeScript side;
 * test/engine/layout.test.ts checks they agree with every build's exports.
 */
import type { BuildKind } from "./kernels";

export const BUILD_KINDS: readonly BuildKind[] = ["relaxed-fused", "relaxed", "simd", "scalar"];

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Bytes of one kernel instance's scratch region: each extra thread's instance gets its own (set_scratch). */
export const SCRATCH_BYTES = 512 * 1024;

/** Q8A of an n-vector (n a multiple of 32): f32 scales and i32 sums (each section 16-byte aligned), int8 and permuted int16 values. */
export function q8aBytes(n: number): number {
  const nb = n >>> 5;
  return 2 * align16(4 * nb) + 32 * nb + 64 * nb;
}

/**
 * Q8B of ntok n-vectors: 4-token groups of 288 B per block; the relaxed build appends 8-token
 * groups of 320 B per block; the relaxed-fused build has only 4-token groups of 160 B per block.
 */
export function q8bBytes(build: BuildKind, n: number, ntok: number): number {
  const nb = n >>> 5;
  if (build === "relaxed-fused") return Math.ceil(ntok / 4) * nb * 160;
  const plain = Math.ceil(ntok / 4) * nb * 288;
  return build === "relaxed" ? plain + Math.ceil(ntok / 8) * nb * 320 : plain;
}

/**
 * How the Q8B of positions [t0, t1) of a batch of ntok, made alone
 * (quantize_q8b of t1 − t0 rows), goes into the Q8B of the whole batch:
 * [from, to, bytes] moves, one per part. t0 a multiple of 8 (whole groups of
 * every part); a last partial group comes zero-padded, as the whole batch's.
 */
export function q8bPieces(build: BuildKind, n: number, ntok: number, t0: number, t1: number): [number, number, number][] {
  if (t0 % 8 !== 0 || t0 < 0 || t1 <= t0 || t1 > ntok) throw new RangeError(`positions [${t0}, ${t1}) of ${ntok} are not whole 8-position groups`);
  const nb = n >>> 5;
  const group4 = build === "relaxed-fused" ? 160 : 288;
  const first = Math.ceil((t1 - t0) / 4) * nb * group4;
  const pieces: [number, number, number][] = [[0, (t0 / 4) * nb * group4, first]];
  if (build === "relaxed") pieces.push([first, Math.ceil(ntok / 4) * nb * 288 + (t0 / 8) * nb * 320, Math.ceil((t1 - t0) / 8) * nb * 320]);
  return pieces;
}

/** Q4R (repacked Q4_0): 4-row groups (the last zero-padded) of 72 B per 32-column block. */
export function q4rBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 5) * 72;
}

/** Q8R (Q8_0, 4-row groups with the rows' scales as f32): 144 B per 4 rows and 32 columns, 8 more than the file's. */
export function q8rBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 5) * 144;
}

/**
 * The most columns a Q8R matrix may have: the relaxed matvec's per-call table (80 B per
 * 32 columns) must end below the scratch offset where the matmul's small path keeps its
 * activations (assembly/q8quant.ts). The 1.6B's widest matrix has 5632.
 */
export const Q8R_MAX_COLS = 45856;

/** Q6R (4-row interleaved Q6_K): 4-row groups (the last zero-padded) of 840 B per 256-column superblock. */
export function q6rBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 8) * 840;
}

/** Q4KR (Q4_K, 4-row groups, scales unpacked to bytes): 592 B per 4 rows and 256 columns, 16 more than the file's. */
export function q4krBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 8) * 592;
}

/** Q5KR (Q5_K, 4-row groups, scales unpacked, one byte per value): 1104 B per 4 rows and 256 columns, 1.57× the file's 704. */
export function q5krBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 8) * 1104;
}

/** Q2KR (Q2_K, 4-row groups side by side by quads, a block's 2-bit values in two vectors): 336 B per 4 rows and 256 columns, the file's bytes. */
export function q2krBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 8) * 336;
}

/** Q3KR (Q3_K, 4-row groups side by side by quads, the 3-bit values in three vectors per block): 440 B per 4 rows and 256 columns, the file's bytes. */
export function q3krBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 8) * 440;
}

/** Q41R (Q4_1, 4-row groups with the four rows' d and m first): 80 B per 4 rows and 32 columns, the file's bytes. */
export function q41rBytes(rows: number, cols: number): number {
  return Math.ceil(rows / 4) * (cols >>> 5) * 80;
}

/** Q50R / Q51R (Q5_0 / Q5_1, 4-row groups): 88 / 96 B per 4 rows and 32 columns, the file's bytes. */
export function q5rBytes(rows: number, cols: number, withMin: boolean): number {
  return Math.ceil(rows / 4) * (cols >>> 5) * (withMin ? 96 : 88);
}

/** Matrix kinds whose products take int8-quantized activations (Q8A, Q8B). */
export const isQuantized = (kind: string | undefined) => kind === "q4r" || kind === "q8r" || kind === "q6r" || kind === "q4kr" || kind === "q5kr" || kind === "q2kr" || kind === "q3kr" || kind === "q41r" || kind === "q50r" || kind === "q51r";

/**
 * Matrix kinds whose products need activations with one scale per 256 values
 * (quantize_q8a_k / quantize_q8b_k): their kernels keep a superblock's sums in
 * int32 and fold them with the superblock's one d_x (docs/kernels.md, "The
 * K-quants"). Every other quantized kind reads such activations correctly too.
 */
export const needsGrain256 = (kind: string | undefined) => kind === "q4kr" || kind === "q5kr";

/** Bytes of a matrix placed in a repacked layout (4-row groups, the last padded); 0 for kinds read as stored. */
export function repackedBytes(kind: string, rows: number, cols: number): number {
  switch (kind) {
    case "q4r": return q4rBytes(rows, cols);
    case "q8r": return q8rBytes(rows, cols);
    case "q6r": return q6rBytes(rows, cols);
    case "q4kr": return q4krBytes(rows, cols);
    case "q5kr": return q5krBytes(rows, cols);
    case "q2kr": return q2krBytes(rows, cols);
    case "q3kr": return q3krBytes(rows, cols);
    case "q41r": return q41rBytes(rows, cols);
    case "q50r": return q5rBytes(rows, cols, false);
    case "q51r": return q5rBytes(rows, cols, true);
    default: return 0;
  }
}

/**
 * Where rows r0.. (r0 a multiple of 4) of a placed matrix begin, in bytes
 * from its start: whole 4-row groups of a repacked kind, else r0 stored rows
 * of `rowBytes`.
 */
export function rowOffset(kind: string, r0: number, cols: number, rowBytes: number): number {
  return repackedBytes(kind, r0, cols) || r0 * rowBytes;
}
