// Kernel entry point. The same sources compile to four builds; each kernel
// picks its implementation with the compile-time constants ASC_FEATURE_SIMD /
// ASC_FEATURE_RELAXED_SIMD / FUSED, so the untaken branches are never compiled.
// The kernels are listed by name: quant.ts and kquant.ts also export helpers
// the other kernel files share, and those must not become module exports.

import { defaultScratch, FUSED, SCRATCH_BYTES } from "./common";

export { set_scratch } from "./common";
export {
  q8a_bytes, q4r_bytes, quantize_q8a, repack_q4_0, matvec_q4r_q8a,
  matvec_q6k_q8a, dequant_q4_0, dequant_q8_0, dequant_q6_k,
  q8b_bytes, quantize_q8b, matmul_q4r_q8b, quantize_q8a_k, quantize_q8b_k,
} from "./quant";
export {
  q4kr_bytes, q5kr_bytes, repack_q4_k, repack_q5_k, matvec_q4kr_q8a, matvec_q5kr_q8a, matmul_q4kr_q8b, matmul_q5kr_q8b,
  dequant_q4_k, dequant_q5_k,
} from "./kquant";
export { q6r_bytes, repack_q6_k, matvec_q6r_q8a } from "./q6matvec";
export { matmul_q6r_q8b } from "./q6matmul";
export { q8r_bytes, repack_q8_0, matvec_q8r_q8a, matmul_q8r_q8b } from "./q8quant";
export {
  q2kr_bytes, q3kr_bytes, repack_q2_k, repack_q3_k, matvec_q2kr_q8a, matvec_q3kr_q8a, matmul_q2kr_q8b, matmul_q3kr_q8b,
  dequant_q2_k, dequant_q3_k,
} from "./kquant-low";
export { q41r_bytes, repack_q4_1, matvec_q41r_q8a, dequant_q4_1 } from "./q41quant";
export {
  q50r_bytes, q51r_bytes, repack_q5_0, repack_q5_1, matvec_q50r_q8a, matvec_q51r_q8a,
  dequant_q5_0, dequant_q5_1,
} from "./q5quant";
export { matmul_q41r_q8b, matmul_q50r_q8b, matmul_q51r_q8b } from "./q41q5matmul";
export * from "./float";

// First byte the host may use: after static data and the default scratch.
export function heap_base(): usize {
  return defaultScratch() + SCRATCH_BYTES;
}

// Bytes of a scratch region (what set_scratch expects).
export function scratch_bytes(): usize {
  return SCRATCH_BYTES;
}

// 3 = relaxed SIMD with the fused dot, 2 = relaxed SIMD, 1 = SIMD, 0 = scalar.
export function build_kind(): i32 {
  if (FUSED) return 3;
  if (ASC_FEATURE_RELAXED_SIMD) return 2;
  if (ASC_FEATURE_SIMD) return 1;
  return 0;
}

// The fused dot past the kernels' operand range, as a capability probe for
// the self-test: p holds 16 signed bytes a, 16 bytes b (the 7-bit operand,
// here up to 255) and four int32 accumulators c; the four lanes of
// c + dot(a, b) go to p + 48. The relaxed-fused build uses the instruction;
// every other build computes what one AVX-VNNI vpdpbusd gives (b read
// unsigned, every sum exact). The kernels keep b in 0..127, where every host
// agrees, but where the lowering differs it also costs: pmaddubsw pair sums
// (saturating here), pmaddwd and paddd on x86 without VNNI, where the fused
// matmuls ran at half the relaxed build's speed. So the relaxed-fused build
// passes the self-test only where its dot is the one fast instruction.
export function fused_dot_probe(p: usize): void {
  if (FUSED) {
    v128.store(p, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p), v128.load(p, 16), v128.load(p, 32)), 48);
    return;
  }
  for (let l: usize = 0; l < 4; l++) {
    let s = load<i32>(p + 32 + (l << 2));
    for (let j: usize = 0; j < 4; j++) s += <i32>load<i8>(p + (l << 2) + j) * <i32>load<u8>(p + 16 + (l << 2) + j);
    store<i32>(p + 48 + (l << 2), s);
  }
}
