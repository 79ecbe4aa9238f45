/**
 * Which kernel build the Worker takes in real workerd, where it chooses by the self-test alone (a
 * Worker's clock cannot time a probe): relaxed-fused where V8 lowers the fused 8-bit dot to one
 * AVX-VNNI instruction, relaxed where it lowers it to pmaddubsw, pmaddwd and paddd, which runs the
 * fused matmuls at about half the relaxed build's speed. The second lowering is forced here with
 * workerd's V8 flag --no-enable-avx-vnni, as a CPU without AVX-VNNI would give it; the CPU's own
 * lowering is checked by loading.test.ts (relaxed-fused exactly where the CPU has AVX-VNNI).
 */
import { expect, it } from "vitest";
import { startBareWorkerd } from "./bare-workerd";
import { testModelPath, waitHealthy } from "./harness";
import { localWorkerdV8Flags } from "./v8-flags";

const VARS = { MODEL_KEY: "models/tiny-q4_0.gguf", MODEL_ID: "edgelm-tiny", ENGINE: "wasm" };

it("without AVX-VNNI the relaxed-fused build fails its self-test and the Worker takes the relaxed build", async () => {
  const w = await startBareWorkerd({ vars: VARS, model: await testModelPath(), v8Flags: [...localWorkerdV8Flags(), "--no-enable-avx-vnni"] });
  try {
    await waitHealthy(w);
    const { engine } = (await (await fetch(`${w.url}/health`)).json()) as { engine: string };
    expect(engine).toMatch(/^wasm \(relaxed kernels: relaxed build, self-test passed \(.* on first calls and after warm-up\); skipped relaxed-fused: self-test FAILED on first calls: \d+\/\d+ outputs differ from scalar \(first #\d+, the fused-dot probe: -?\d+ vs -?\d+, this CPU's fused dot is not one AVX-VNNI instruction\)/);
  } finally {
    await w.close();
  }
}, 120_000);
