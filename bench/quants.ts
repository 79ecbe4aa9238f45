/**
 * `npm run bench -- --quants`: edgelm's wasm engine vs llama.cpp on the
 * synthetic Stable LM 2 1.6B shape written in each quant type people
 * download, one thread, each engine in its own child process
 * (bench/engine-child.ts), the two engines alternating, `--rounds` times;
 * medians per engine. Then the cost of llama.cpp's default Q4_0 layout (a
 * Q6_K output head) against the all-Q4_0 file, edgelm alone, alternating.
 *
 *   npm run bench -- --quants [--quick] [--rounds N] [--types q4_k_m,q5_k_m,q4_1,q8_0]
 *
 * Files are written once under models/bench/ (synth, seed 0; a minute or two
 * each). Writes bench/results/quants-<time>.json. Timings only here, never in
 * tests; the machine is noisy: compare within one run.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { engineChild, root, type EngineResult } from "./common";
import { enableRelaxedSimd } from "../src/engine/node";
import { percentiles } from "../src/generate/eval-stats";
import { openGGUF, writeGGUFFile } from "../src/gguf/node";
import { dequantize, quantize } from "../src/gguf/quant";
import { TensorType } from "../src/gguf/types";
import { isOutType, type OutType } from "../weights-tools/mapping";
import { writeSynthGGUF } from "../weights-tools/synth";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: npm run bench -- --quants [--quick] [--rounds N] [--types q4_k_m,q5_k_m,q4_1,q8_0]");

const { values: cli } = parseArgs({ options: { quick: { type: "boolean" }, rounds: { type: "string" }, types: { type: "string" } } });
const quick = cli.quick ?? false;
const ROUNDS = Number(cli.rounds ?? (quick ? 1 : 3));
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive integer, got ${cli.rounds}`);
const TYPES = (cli.types ?? "q4_k_m,q5_k_m,q4_1,q8_0").split(",").map((s) => s.trim());
for (const t of TYPES) if (!isOutType(t)) throw new Error(`--types: unknown type ${JSON.stringify(t)}`);
const PROMPT = quick ? 32 : 128;
const DECODE = quick ? 16 : 64;
const build = enableRelaxedSimd() ? "relaxed" : "simd";

async function modelFile(type: OutType): Promise<string> {
  const path = join(root, "models", "bench", `synth-1_6b-${type}-seed0.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(dirname(path), { recursive: true });
  process.stderr.write(`generating ${path} (synthetic 1.6B, ${type}; once) …\n`);
  await writeSynthGGUF("1_6b", path, type, 0, { onWarning: () => {} });
  return path;
}

/**
 * llama-quantize's Q4_0 layout: ours with output.weight re-encoded as Q6_K
 * (from the Q4_0 values; speed, not quality, is measured here).
 */
async function withQ6Head(src: string): Promise<string> {
  const path = src.replace(/\.gguf$/, "-q6k-head.gguf");
  if (existsSync(path)) return path;
  process.stderr.write(`writing ${path} (output.weight as Q6_K) …\n`);
  const f = await openGGUF(src);
  try {
    const tensors = f.tensors.map((t) => ({
      name: t.name,
      dims: t.dims,
      type: t.name === "output.weight" ? TensorType.Q6_K : t.type,
      data: async () => {
        const bytes = await f.readTensor(t);
        return t.name === "output.weight" ? quantize(TensorType.Q6_K, dequantize(t.type, bytes, t.count)) : bytes;
      },
    }));
    await writeGGUFFile(path, { metadata: f.metadata, tensors, alignment: f.alignment });
  } finally {
    await f.close();
  }
  return path;
}

const median = (xs: number[]) => percentiles(xs).median;
const run = (path: string, engine: string[]) => {
  const r = engineChild(["--model", path, ...engine, "--threads", "1"], PROMPT, DECODE);
  if ("error" in r) throw new Error(`${engine.join(" ")} on ${path}: ${r.error}`);
  return r;
};
const f = (x: number, d = 1) => x.toFixed(d);

interface Row {
  type: string;
  file: string;
  edgelm: EngineResult[];
  llama: EngineResult[];
}
const rows: Row[] = [];
for (const type of TYPES as OutType[]) {
  const file = await modelFile(type);
  const row: Row = { type, file, edgelm: [], llama: [] };
  for (let i = 0; i < ROUNDS; i++) {
    row.edgelm.push(run(file, ["--engine", "edgelm", "--build", build]));
    row.llama.push(run(file, ["--engine", "llama.cpp"]));
  }
  rows.push(row);
  process.stderr.write(`${type}: done\n`);
}

// llama.cpp's own Q4_0 layout keeps the output head in Q6_K; ours by default is all Q4_0.
const q4 = await modelFile("q4_0");
const q4head = await withQ6Head(q4);
const headRuns: { all: EngineResult[]; q6head: EngineResult[] } = { all: [], q6head: [] };
for (let i = 0; i < Math.max(ROUNDS, 3); i++) {
  headRuns.all.push(run(q4, ["--engine", "edgelm", "--build", build]));
  headRuns.q6head.push(run(q4head, ["--engine", "edgelm", "--build", build]));
}

const med = (rs: EngineResult[], k: "prefill_tok_s" | "decode_tok_s") => median(rs.map((r) => r[k]));
const lines = [
  `synthetic Stable LM 2 1.6B shape, one thread, prompt ${PROMPT}, decode ${DECODE} greedy; medians of ${ROUNDS} alternating runs; edgelm ${build} build`,
  `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, Node ${process.version}`,
  "",
  "| type | edgelm prefill tok/s | llama.cpp prefill tok/s | prefill ratio (target ≥ 0.5×) | edgelm decode tok/s | llama.cpp decode tok/s | decode ratio (target ≥ 0.9×) | decode ratio per round: median (range) |",
  "|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => {
    const [ep, lp, ed, ld] = [med(r.edgelm, "prefill_tok_s"), med(r.llama, "prefill_tok_s"), med(r.edgelm, "decode_tok_s"), med(r.llama, "decode_tok_s")];
    // Each round's two runs are adjacent in time, so their ratio sees the same phase of a noisy machine.
    const perRound = r.edgelm.map((e, i) => e.decode_tok_s / r.llama[i].decode_tok_s);
    const range = `${f(Math.min(...perRound), 2)}–${f(Math.max(...perRound), 2)}`;
    return `| ${r.type} | ${f(ep)} | ${f(lp)} | ${f(ep / lp, 2)}× | ${f(ed)} | ${f(ld)} | ${f(ed / ld, 2)}× | ${f(median(perRound), 2)}× (${range}) |`;
  }),
  "",
  `Q4_0 with a Q6_K output head (llama.cpp's layout) vs all Q4_0, edgelm, medians of ${headRuns.all.length} alternating runs:`,
  `  decode ${f(med(headRuns.q6head, "decode_tok_s"))} vs ${f(med(headRuns.all, "decode_tok_s"))} tok/s = ${f(med(headRuns.q6head, "decode_tok_s") / med(headRuns.all, "decode_tok_s"), 2)}× (target ≥ 0.9×)`,
  `  prefill ${f(med(headRuns.q6head, "prefill_tok_s"))} vs ${f(med(headRuns.all, "prefill_tok_s"))} tok/s`,
];
console.log(lines.join("\n"));
mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `quants-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), prompt: PROMPT, decode: DECODE, rounds: ROUNDS, build, rows, headRuns }, null, 2));
console.log(`\nwrote ${out}`);
