#!/usr/bin/env node
// Compiles assembly/ into four kernel builds (same sources; the kernels pick
// their implementation from the enabled features and KERNELS_FUSED at compile
// time):
//   build/kernels-relaxed-fused.wasm  relaxed SIMD with i32x4.relaxed_dot_i8x16_i7x16_add_s
//   build/kernels-relaxed.wasm        relaxed SIMD, i16x8.relaxed_dot_i8x16_i7x16_s only
//   build/kernels-simd.wasm           SIMD (i32x4.dot_i16x8_s)
//   build/kernels-scalar.wasm         no SIMD: reference and fallback
// and each again as build/kernels-*-shared.wasm, importing a shared memory
// (up to 4 GiB) that several threads' instances work in (the Node host's
// threads; workerd has no threads and loads the plain builds).
// The fused instruction is a build of its own because hosts differ in whether
// it is right (Node 20's baseline compiler gets it wrong) and whether it is
// fast (one VNNI instruction where V8 uses AVX-VNNI); the engine picks a
// build at start-up (src/engine/kernels.ts).
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
const features = [
  { name: "kernels-simd", enable: ["simd"], fused: 0 },
  { name: "kernels-relaxed", enable: ["simd", "relaxed-simd"], fused: 0 },
  { name: "kernels-relaxed-fused", enable: ["simd", "relaxed-simd"], fused: 1 },
  { name: "kernels-scalar", enable: [], fused: 0 },
];
// A shared memory must declare its maximum: 65536 pages, the wasm32 limit.
const shared = ["--sharedMemory", "--maximumMemory", "65536"];
const builds = features.flatMap((b) => {
  const use = ["--use", `KERNELS_FUSED=${b.fused}`];
  return [
    { name: `${b.name}.wasm`, flags: [...(b.enable.length ? ["--enable", b.enable.join(",")] : []), ...use] },
    { name: `${b.name}-shared.wasm`, flags: ["--enable", [...b.enable, "threads"].join(","), ...shared, ...use] },
  ];
});

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
