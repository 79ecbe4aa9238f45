/**
 * The relaxed-fused build with every i32x4.relaxed_dot_i8x16_i7x16_add_s replaced by a call to a
 * function that computes the same thing from instructions Node 20 gets right
 * (i16x8.relaxed_dot_i8x16_i7x16_s, i32x4.extadd_pairwise_i16x8_s, i32x4.add). For the operands
 * the kernels pass (the 7-bit one in 0..127) the two are equal by the spec: the pair sums are at
 * most 2·128·127 < 2^15, so the two-step form neither saturates nor wraps. Node 20's baseline
 * compiler computes the fused instruction wrongly, so this is how the fused build's kernels (their
 * layouts, tiling and arithmetic) are checked bit for bit in Node; the instruction itself is
 * checked where it runs, by the self-test (src/engine/kernels.ts) in each host.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import binaryen from "binaryen";
import { DEFAULT_BUILD_DIR } from "../../src/engine/node";

const HELPER = `(func $fused_dot_emulated (param $a v128) (param $b v128) (param $c v128) (result v128)
  (i32x4.add (local.get $c) (i32x4.extadd_pairwise_i16x8_s (i16x8.relaxed_dot_i8x16_i7x16_s (local.get $a) (local.get $b)))))`;

export function emulateFusedDot(bytes: Uint8Array): { bytes: Uint8Array; replaced: number } {
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
  const out = binaryen.parseText(`${body.slice(0, end)}\n ${HELPER}\n)`);
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
