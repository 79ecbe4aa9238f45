/**
 * The production sampler's milliseconds per token inside workerd, timed from outside the process
 * (bench/workerd-probe.ts): src/generate/sampler.ts bundled into a Worker with the sampler
 * bench's inputs (bench/sampler-cases.ts), as bench/sampler.ts measures it in Node. Used by
 * bench/sampler.ts --host workerd and by bench/worker.ts, which sets it against the
 * Worker's decode step.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import type { SamplingOptions } from "../src/generate/sampler";
import type { Shape } from "../test/generate/sampler-harness";
import { root } from "./common";
import { perCall, startProbe } from "./workerd-probe";

const ENTRY = (configs: Partial<SamplingOptions>[], shapes: Shape[]) => `
import { DEFAULT_SAMPLING, sample, seededRandom } from ${JSON.stringify(join(root, "src/generate/sampler.ts"))};
import { samplerCase } from ${JSON.stringify(join(root, "bench/sampler-cases.ts"))};
const configs = ${JSON.stringify(configs)}.map((c) => ({ ...DEFAULT_SAMPLING, ...c }));
const cases = ${JSON.stringify(shapes)}.map(samplerCase);
const rng = seededRandom(1);
export default {
  async fetch(req) {
    const q = new URL(req.url).searchParams;
    const c = cases[Number(q.get("shape"))], opts = configs[Number(q.get("config"))];
    let s = 0;
    for (let i = 0, n = Number(q.get("n")); i < n; i++) s += sample(c.inputs[i % 8], opts, rng, c.context, c.generated);
    return new Response(String(s));
  },
};
`;

/** ms per token of each config on each shape: result[shape][config]. */
export async function samplerInWorkerd(configs: Partial<SamplingOptions>[], shapes: Shape[], n = 100): Promise<number[][]> {
  const dir = mkdtempSync(join(tmpdir(), "edgelm-sampler-workerd-"));
  try {
    writeFileSync(join(dir, "entry.js"), ENTRY(configs, shapes));
    await build({ entryPoints: [join(dir, "entry.js")], bundle: true, format: "esm", platform: "neutral", outfile: join(dir, "worker.js"), logLevel: "error" });
    const probe = await startProbe(dir, [{ name: "worker.js", kind: "esModule" }], "shape=0&config=0&n=0");
    try {
      const variants = shapes.flatMap((_, s) => configs.map((_, c) => `${s},${c}`));
      for (const v of variants) for (let i = 0; i < 3; i++) await probe.get(query(v, 20)); // tier up
      const t = await perCall(probe, variants, query, n);
      return shapes.map((_, s) => configs.map((_, c) => t[`${s},${c}`] * 1000));
    } finally {
      await probe.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function query(variant: string, n: number): string {
  const [shape, config] = variant.split(",");
  return `shape=${shape}&config=${config}&n=${n}`;
}
