/**
 * Which kernel build the Worker takes in real workerd, where it chooses by the self-test alone (a
 * Worker's clock cannot time a probe): relaxed-fused where V8 lowers the fused 8-bit dot to one
 * AVX-VNNI instruction, relaxed where it lowers it to pmaddubsw, pmaddwd and paddd, which runs the
 * fused matmuls at about half the relaxed build's speed. The second lowering is forced here with
 * workerd's V8 flag --no-enable-avx-vnni, as a CPU without AVX-VNNI would give it.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { startBareWorkerd } from "./bare-workerd";
import { testModelPath, waitHealthy } from "./harness";
import { localWorkerdV8Flags } from "./v8-flags";

const VARS = { MODEL_KEY: "models/tiny-q4_0.gguf", MODEL_ID: "edgelm-tiny", ENGINE: "wasm" };

/** Whether this CPU has AVX-VNNI (the VEX form V8 emits), from Linux's flags. */
function cpuHasAvxVnni(): boolean {
  try {
    return /\bavx_vnni\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
}

async function engineLine(v8Flags: string[]): Promise<string> {
  const w = await startBareWorkerd({ vars: VARS, model: await testModelPath(), v8Flags });
  try {
    await waitHealthy(w);
    return ((await (await fetch(`${w.url}/health`)).json()) as { engine: string }).engine;
  } finally {
    await w.close();
  }
}

it("without AVX-VNNI the relaxed-fused build fails its self-test and the Worker takes the relaxed build", async () => {
  const engine = await engineLine([...localWorkerdV8Flags(), "--no-enable-avx-vnni"]);
  expect(engine).toMatch(/^wasm \(relaxed kernels: relaxed build, self-test passed \(.* on first calls and after warm-up\); skipped relaxed-fused: self-test FAILED on first calls: \d+\/\d+ outputs differ from scalar \(first #\d+, the fused-dot probe: -?\d+ vs -?\d+, this CPU's fused dot is not one AVX-VNNI instruction\)/);
}, 120_000);

it("with the CPU's own lowering the Worker takes relaxed-fused exactly where the CPU has AVX-VNNI", async () => {
  const engine = await engineLine(localWorkerdV8Flags());
  expect(engine).toMatch(cpuHasAvxVnni() ? /^wasm \(relaxed-fused kernels: relaxed-fused build, self-test passed/ : /^wasm \(relaxed kernels: relaxed build, self-test passed/);
}, 120_000);
