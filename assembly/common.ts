// Shared helpers for the kernels. Everything here works on raw linear-memory
// addresses: the host owns the memory layout and passes pointers in.

// The relaxed-fused build (scripts/build-wasm.mjs passes KERNELS_FUSED=1 to it
// and 0 to the others): its integer products use the fused
// i32x4.relaxed_dot_i8x16_i7x16_add_s, the relaxed build the two-step
// i16x8.relaxed_dot_i8x16_i7x16_s. A constant, so the untaken path is never
// compiled into either build.
// @ts-ignore: decorator
@inline export const FUSED: bool = ASC_FEATURE_RELAXED_SIMD && KERNELS_FUSED != 0;

// Scratch region for kernels that need a little temporary space (repack,
// prefill tiles) instead of heap allocation. By default it lies right after
// the module's static data and the host starts its own allocations at
// heap_base(). A global, not a constant, because every thread that shares the
// memory runs its own instance and needs its own region: the host points each
// extra instance at one it allocated (set_scratch).
export const SCRATCH_BYTES: usize = 512 * 1024;

@inline export function defaultScratch(): usize {
  return (__heap_base + 63) & ~(<usize>63);
}

let scratch: usize = defaultScratch();

// Only the shared-memory builds read the global: in the plain builds (one
// thread; the Worker's) the region stays a constant, because workerd runs the
// hot loops markedly slower when they read a mutable global for it.
@inline export function scratchBase(): usize {
  return ASC_FEATURE_THREADS ? scratch : defaultScratch();
}

// For this instance only; ptr is 64-byte aligned, SCRATCH_BYTES long, and
// used by no other instance. A no-op in the plain builds, which run one thread.
export function set_scratch(ptr: usize): void {
  scratch = ptr;
}

// f16 bits -> f32, exact for every finite half (normals and subnormals): move
// exponent+mantissa into f32 position, then rescale the exponent bias with one
// exact multiply by 2^112. Inf/NaN are never produced by f32_to_f16 below
// (it saturates), so they are not special-cased here.
@inline export function h2f(h: u32): f32 {
  return reinterpret<f32>(((h & 0x8000) << 16) | ((h & 0x7fff) << 13)) * <f32>5.192296858534828e33;
}

// Four halves at p as f32 without a float operation on a normal one. h2f's
// multiply, given the bits of a subnormal half shifted into f32 position (an
// f32 denormal), takes an x86 microcode assist of ~150 cycles; the
// superblock scales of Q6_K (and, from real weights, Q4_K/Q5_K) are
// subnormal halves in most files, which made the Q6R matvec 2.5x slower per
// weight. Normal halves rebias the exponent with an integer add, subnormal
// ones scale their mantissa by 2^-24 (a normal f32 product); both exact, so
// the same bits as h2f for every input. For per-superblock scales only: on
// Q4_0's per-block scales the select costs more than it saves.
// Its five constants are loads from VCONST (one instruction each) where a
// constant written here would cost three at every call inside a loop.
@inline export function h2f_x4_nodenorm(p: usize): v128 {
  const h = v128.load16x4_s(p);
  const mag = v128.and(h, v128.load(VCONST + VC_HN)); // 0x7fff
  const normal = i32x4.add(i32x4.shl(mag, 13), v128.load(VCONST + VC_HN, 16)); // 112 << 23
  const sub = f32x4.mul(f32x4.convert_i32x4_s(mag), v128.load(VCONST + VC_HN, 32)); // 2^-24
  const sign = i32x4.shl(v128.and(h, v128.load(VCONST + VC_HN, 48)), 16); // 0x8000
  return v128.or(v128.bitselect(sub, normal, i32x4.lt_s(mag, v128.load(VCONST + VC_HN, 64))), sign); // 0x400
}

// f32 -> f16 bits, round to nearest even; saturates to +-65504 instead of
// producing infinity so cached values stay finite; NaN becomes a quiet NaN.
export function f2h(f: f32): u32 {
  const x = reinterpret<u32>(f);
  const sign = (x >> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  if (a >= 0x477ff000) return sign | 0x7bff;
  if (a < 0x38800000) {
    // Subnormal half: the value times 2^24 is the mantissa (exact scaling).
    return sign | <u32>nearest<f32>(reinterpret<f32>(a) * <f32>16777216.0);
  }
  return sign | (((a + 0x0fff + ((a >> 13) & 1)) >> 13) - (112 << 10));
}

// f2h on four lanes, same bits: every case computed, then selected per lane
// (compares on the non-negative magnitude bits, so signed compares are right).
// Subnormal lanes round with f32x4.nearest on the magnitude times 2^24, as f2h.
@inline export function f2h_x4(x: v128): v128 {
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000));
  const normal = i32x4.sub(
    i32x4.shr_u(i32x4.add(i32x4.add(a, i32x4.splat(0x0fff)), v128.and(i32x4.shr_u(a, 13), i32x4.splat(1))), 13),
    i32x4.splat(112 << 10),
  );
  const sub = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(a, f32x4.splat(<f32>16777216.0))));
  let r = v128.bitselect(sub, normal, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  r = v128.bitselect(i32x4.splat(0x7bff), r, i32x4.ge_s(a, i32x4.splat(0x477ff000)));
  r = v128.bitselect(i32x4.splat(0x7e00), r, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(r, sign);
}

// Eight f32 at p -> eight halves at q (f2h_x4 twice, narrowed: every value fits in 16 bits).
@inline export function f2h_x8(p: usize, q: usize): void {
  v128.store(q, i16x8.narrow_i32x4_u(f2h_x4(v128.load(p)), f2h_x4(v128.load(p, 16))));
}

// Four halves (8 bytes at p) -> f32x4, same bits as h2f: sign-extending to
// 32 bits and shifting by 13 leaves sign copies in bits 28..31; masking bits
// 28..30 off gives sign<<31 | (h & 0x7fff)<<13 in three vector ops.
@inline export function h2f_x4(p: usize): v128 {
  const h = i32x4.extend_low_i16x8_s(v128.load64_zero(p));
  const bits = v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffe000));
  return f32x4.mul(bits, f32x4.splat(<f32>5.192296858534828e33));
}

// Constant vectors in static memory. A v128 constant written in a kernel is
// rematerialized by V8 at every use inside a loop (a 64-bit immediate move and
// a broadcast, 3 instructions each); loading it once before the loop keeps it
// in a register instead. Offsets (bytes) of the 16-byte vectors:
export const VC_NIB8: usize = 0; //    i8x16 0x0f
export const VC_ONES16: usize = 16; // i16x8 1
export const VC_HMASK: usize = 32; //  i32x4 0x8fffe000 (h2f_x4)
export const VC_HMUL: usize = 48; //   f32x4 2^112      (h2f_x4)
export const VC_NIB16: usize = 64; //  i16x8 0x000f
export const VC_EVEN16: usize = 80; // i16x8 1, 0, 1, 0, ... (dot: the even lanes widened)
export const VC_ODD16: usize = 96; //  i16x8 0, 1, 0, 1, ... (dot: the odd lanes widened)
export const VC_Q6M4: usize = 112; //  i16x8 0x0f0f (Q6_K: low nibbles of ql)
export const VC_Q6M2: usize = 128; //  i16x8 0x3030 (Q6_K: bit pair of qh)
export const VC_H16: usize = 144; //   i16x8 0x8fff (attention: eight halves to f32 bits)
export const VC_B3: usize = 160; //    i8x16 0x03 (Q2_K/Q3_K: a 2-bit field)
export const VC_B4: usize = 176; //    i8x16 0x04 (Q3_K: the high bit at bit 2)
export const VC_B32: usize = 192; //   i8x16 0x20 (Q3_K: its scales' bias)
export const VC_HN: usize = 208; //    i32x4 0x7fff, 112 << 23, f32 2^-24, 0x8000, 0x400 (h2f_x4_nodenorm; five vectors)
export const VC_B16: usize = 288; //   i8x16 0x10 (Q5_0/Q5_1: the fifth bit)
export const VC_B7: usize = 304; //    i8x16 0x07 (Q3KR: a 3-bit value)
export const VCONST: usize = memory.data<u32>([
  0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f,
  0x00010001, 0x00010001, 0x00010001, 0x00010001,
  0x8fffe000, 0x8fffe000, 0x8fffe000, 0x8fffe000,
  0x77800000, 0x77800000, 0x77800000, 0x77800000,
  0x000f000f, 0x000f000f, 0x000f000f, 0x000f000f,
  0x00000001, 0x00000001, 0x00000001, 0x00000001,
  0x00010000, 0x00010000, 0x00010000, 0x00010000,
  0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f,
  0x30303030, 0x30303030, 0x30303030, 0x30303030,
  0x8fff8fff, 0x8fff8fff, 0x8fff8fff, 0x8fff8fff,
  0x03030303, 0x03030303, 0x03030303, 0x03030303,
  0x04040404, 0x04040404, 0x04040404, 0x04040404,
  0x20202020, 0x20202020, 0x20202020, 0x20202020,
  0x00007fff, 0x00007fff, 0x00007fff, 0x00007fff,
  0x38000000, 0x38000000, 0x38000000, 0x38000000,
  0x33800000, 0x33800000, 0x33800000, 0x33800000,
  0x00008000, 0x00008000, 0x00008000, 0x00008000,
  0x00000400, 0x00000400, 0x00000400, 0x00000400,
  0x10101010, 0x10101010, 0x10101010, 0x10101010,
  0x07070707, 0x07070707, 0x07070707, 0x07070707,
], 16);

// h2f_x4 with its two constants passed in (loaded once per call from VCONST).
@inline export function h2f_x4c(p: usize, hmask: v128, hmul: v128): v128 {
  return h2fLanes_c(v128.load16x4_s(p), hmask, hmul);
}

// The same for four halves sign-extended into h's int32 lanes (eight halves
// of a vector: its extend_low / extend_high).
@inline export function h2fLanes_c(h: v128, hmask: v128, hmul: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(h, 13), hmask), hmul);
}

// h2f_x4c before its multiply by 2^112: the halves' f32 bits, each value
// 2^-112 times the half's. A caller that puts the 2^112 on the other factor
// of a product saves the multiply (the Q4R fold table).
@inline export function h2fBits_x4c(p: usize, hmask: v128): v128 {
  return v128.and(i32x4.shl(v128.load16x4_s(p), 13), hmask);
}

// exp(x) in f32 (Cephes expf: range reduction by ln 2 in two parts, degree-5
// polynomial; within ~2 ulp of the true value on [-87, 88]; x is clamped to
// [-87.3, 88.3], so the result is always finite and > 0). The same f32
// operations in the same order in expf (scalar) and expf4 (four lanes), so
// the builds agree bit for bit; about 4x cheaper than Mathf.exp and
// vectorizable.
// @ts-ignore: decorator
@inline const EXP_LO: f32 = -87.3;
// @ts-ignore: decorator
@inline const EXP_HI: f32 = 88.3;
// @ts-ignore: decorator
@inline const LOG2E: f32 = 1.44269504088896341;
// @ts-ignore: decorator
@inline const LN2_HI: f32 = 0.693359375;
// @ts-ignore: decorator
@inline const LN2_LO: f32 = -2.12194440e-4;
// @ts-ignore: decorator
@inline const P0: f32 = 1.9875691500e-4;
// @ts-ignore: decorator
@inline const P1: f32 = 1.3981999507e-3;
// @ts-ignore: decorator
@inline const P2: f32 = 8.3334519073e-3;
// @ts-ignore: decorator
@inline const P3: f32 = 4.1665795894e-2;
// @ts-ignore: decorator
@inline const P4: f32 = 1.6666665459e-1;
// @ts-ignore: decorator
@inline const P5: f32 = 5.0000001201e-1;

@inline export function expf(x0: f32): f32 {
  const x = min<f32>(max<f32>(x0, EXP_LO), EXP_HI);
  const n = nearest<f32>(x * LOG2E);
  const r = (x - n * LN2_HI) - n * LN2_LO;
  const p = (((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5);
  const y = (p * (r * r) + r) + <f32>1;
  return y * reinterpret<f32>((<i32>n + 127) << 23);
}

// The clamp with pmax/pmin, x first: one instruction each where V8 spends
// seven on max/min, and the same result for every x (a NaN x is returned by
// both, like max/min; -0 and the bounds compare as max/min choose them).
// n is integral in [-126, 127], so adding 1.5·2^23 leaves n + 0x4b400000 in
// its bits: exactly the scalar's <i32>n, without V8's eight-instruction
// trunc_sat.
@inline export function expf4(x0: v128): v128 {
  const x = f32x4.pmin(f32x4.pmax(x0, f32x4.splat(EXP_LO)), f32x4.splat(EXP_HI));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI))), f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(P0), r), f32x4.splat(P1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P4));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(P5));
  const y = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  return f32x4.mul(y, i32x4.shl(i32x4.add(f32x4.add(n, f32x4.splat(12582912.0)), i32x4.splat(127 - 0x4b400000)), 23));
}

// Lane sum in a fixed order ((l0+l1)+(l2+l3)); scalar twins use the same order
// so both builds produce bit-identical results.
@inline export function hsum_f32x4(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Q8A activation layout (n = 32*nb values), sections 16-byte aligned:
//   [0, 4nb)            f32 scale d per block
//   [S, S+4nb)          i32 sum of the block's int8 values   (S = align16(4nb))
//   [Q8, Q8+32nb)       int8 values, natural order           (Q8 = 2S)
//   [Q16, Q16+64nb)     int16 values, per block permuted as  (Q16 = Q8 + 32nb)
//                       x0,x2,..,x14 | x1,x3,..,x15 | x16,x18,..,x30 | x17,..,x31
// The permutation matches how Q4_0 nibbles and Q8_0/Q6_K bytes widen when a
// 16-byte vector is viewed as 8 int16 lanes, so no shuffles are needed.
@inline export function q8aSumOff(nb: usize): usize { return ((nb << 2) + 15) & ~(<usize>15); }
@inline export function q8aQ8Off(nb: usize): usize { return q8aSumOff(nb) << 1; }
@inline export function q8aQ16Off(nb: usize): usize { return q8aQ8Off(nb) + (nb << 5); }
@inline export function q8aBytes(nb: usize): usize { return q8aQ16Off(nb) + (nb << 6); }
