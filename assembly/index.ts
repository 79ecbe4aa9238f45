// Kernel entry point. The same sources compile to four builds; each kernel
// picks its implementation with the compile-time constants ASC_FEATURE_SIMD /
// ASC_FEATURE_RELAXED_SIMD / FUSED, so the untaken branches are never compiled.

import { defaultScratch, FUSED, SCRATCH_BYTES } from "./common";

export { set_scratch } from "./common";
export * from "./quant";
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
