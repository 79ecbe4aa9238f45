#!/usr/bin/env node
// Compiles assembly/ into three kernel builds (same sources; the kernels pick
// their implementation from the enabled features at compile time):
//   build/kernels-relaxed.wasm  SIMD + relaxed SIMD (i16x8 relaxed dot)
//   build/kernels-simd.wasm     SIMD (i32x4.dot_i16x8_s)
//   build/kernels-scalar.wasm   no SIMD: reference and fallback
// Memory is imported (env.memory) so the host owns it and can size it up to
// 4 GiB; the stub runtime is never used for allocation by the kernels.
// Exits non-zero on any compile error.
import asc from "assemblyscript/asc";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const common = [
  join(root, "assembly/index.ts"),
  "-O3",
  "--runtime", "stub",
  "--noAssert",
  "--use", "abort=",
  "--importMemory",
  "--noExportMemory",
];
const builds = [
  { name: "kernels-simd.wasm", flags: ["--enable", "simd"] },
  { name: "kernels-relaxed.wasm", flags: ["--enable", "simd,relaxed-simd"] },
  { name: "kernels-scalar.wasm", flags: [] },
];

mkdirSync(join(root, "build"), { recursive: true });
const t0 = performance.now();
let failed = false;
for (const b of builds) {
  const out = join(root, "build", b.name);
  const { error, stderr } = await asc.main([...common, ...b.flags, "-o", out], {});
  const diag = stderr.toString();
  if (error) {
    process.stderr.write(diag);
    process.stderr.write(`build-wasm: ${b.name} failed: ${error.message}\n`);
    failed = true;
  } else if (diag.trim()) {
    process.stderr.write(diag);
  }
}
if (failed) process.exit(1);
console.log(`build-wasm: ${builds.map((b) => b.name).join(", ")} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
