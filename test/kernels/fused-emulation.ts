/**
 * The relaxed-fused build with every i32x4.relaxed_dot_i8x16_i7x16_add_s replaced by a call to a
 * function that computes it from instructions Node 20 gets right, as a host lowers it: "vnni" as one
 * AVX-VNNI vpdpbusd does (the 7-bit operand read unsigned, every sum exact), "pmaddubsw" as x86
 * without VNNI does (pair sums saturated to int16, then widened and added). For the operands the
 * kernels pass (the 7-bit one in 0..127) the two agree: the pair sums are at most 2·128·127 < 2^15.
 * They differ on the self-test's fused_dot_probe (operands up to 255), which is how the self-test
 * keeps the relaxed-fused build off hosts where its dot is the slow lowering. Node 20's baseline
 * compiler computes the fused instruction wrongly, so this is how the fused build's kernels (their
 * layouts, tiling and arithmetic) are checked bit for bit in Node; the instruction itself is
 * checked where it runs, by the self-test (src/engine/kernels.ts) in each host.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { DEFAULT_BUILD_DIR } from "../../src/engine/node";

/** How a host computes the fused dot: one AVX-VNNI vpdpbusd, or (without VNNI) pmaddubsw, pmaddwd and paddd. */
export type FusedLowering = "vnni" | "pmaddubsw";

// Both read the 7-bit operand b unsigned and form the 16 products exactly in int16 (|a·b| <= 128·255 < 2^15).
const PRODUCTS = `(local.set $lo (i16x8.mul (i16x8.extend_low_i8x16_s (local.get $a)) (i16x8.extend_low_i8x16_u (local.get $b))))
  (local.set $hi (i16x8.mul (i16x8.extend_high_i8x16_s (local.get $a)) (i16x8.extend_high_i8x16_u (local.get $b))))`;

const HELPERS: Record<FusedLowering, string> = {
  // Every sum exact in int32.
  vnni: `(func $fused_dot_emulated (param $a v128) (param $b v128) (param $c v128) (result v128)
  (local $lo v128) (local $hi v128)
  ${PRODUCTS}
  (local.set $lo (i32x4.extadd_pairwise_i16x8_s (local.get $lo)))
  (local.set $hi (i32x4.extadd_pairwise_i16x8_s (local.get $hi)))
  (i32x4.add (local.get $c)
    (i32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $lo) (local.get $hi))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $lo) (local.get $hi)))))`,
  // Adjacent products added in int16 with signed saturation (pmaddubsw), then pairs widened and added.
  pmaddubsw: `(func $fused_dot_emulated (param $a v128) (param $b v128) (param $c v128) (result v128)
  (local $lo v128) (local $hi v128)
  ${PRODUCTS}
  (i32x4.add (local.get $c)
    (i32x4.extadd_pairwise_i16x8_s
      (i16x8.add_sat_s
        (i8x16.shuffle 0 1 4 5 8 9 12 13 16 17 20 21 24 25 28 29 (local.get $lo) (local.get $hi))
        (i8x16.shuffle 2 3 6 7 10 11 14 15 18 19 22 23 26 27 30 31 (local.get $lo) (local.get $hi))))))`,
};

export function emulateFusedDot(bytes: Uint8Array, lowering: FusedLowering = "vnni"): { bytes: Uint8Array; replaced: number } {
  const m = binaryen.readBinary(bytes);
  m.setFeatures(binaryen.Features.All);
  const text = m.emitText();
  m.dispose();
  let replaced = 0;
  const body = text.replace(/i32x4\.relaxed_dot_i8x16_i7x16_add_s/g, () => {
    replaced++;
    return "call $fused_dot_emulated";
  });
  const end = body.lastIndexOf(")");
  const out = binaryen.parseText(`${body.slice(0, end)}\n ${HELPERS[lowering]}\n)`);
  out.setFeatures(binaryen.Features.All);
  if (!out.validate()) throw new Error("emulateFusedDot: the rewritten module does not validate");
  const result = out.emitBinary();
  out.dispose();
  return { bytes: result, replaced };
}

let emulatedDir: string | undefined;

/**
 * A copy of build/ whose relaxed-fused builds (plain and shared-memory) have the fused dot
 * emulated, for loaders that take a folder (loadWasmEngine's buildDir, child processes: binaryen
 * loads in about a second in vitest but in ~20 s through tsx). Made once per process.
 */
export function emulatedFusedBuildDir(): string {
  if (emulatedDir) return emulatedDir;
  const dir = mkdtempSync(join(tmpdir(), "edgelm-fused-"));
  // Only the kernel builds: build/ also holds the playground and edgelm/local folders.
  for (const f of readdirSync(DEFAULT_BUILD_DIR).filter((n) => /^kernels-.*\.wasm$/.test(n))) {
    const bytes = readFileSync(join(DEFAULT_BUILD_DIR, f));
    if (f.startsWith("kernels-relaxed-fused")) writeFileSync(join(dir, f), emulateFusedDot(bytes).bytes);
    else copyFileSync(join(DEFAULT_BUILD_DIR, f), join(dir, f));
  }
  return (emulatedDir = dir);
}
