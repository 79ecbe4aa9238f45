/**
 * Opt-in (not in CI): how much each quant type loses on the full2l synthetic
 * model (the 1.6B's layer shape, two layers, random weights), measured the
 * way a user measures a real file: `edgelm perplexity --kl-base` of the
 * type's file against the F32 file, over the same chunks of a text. Prints
 * the table docs/quantization.md quotes.
 *
 *   node --import tsx scripts/quant-quality.ts [--types q4_0,q4_k_m,...] [--text FILE] [--context 128] [--chunks 2] [--threads N]
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { synthGGUF } from "../weights-tools/fixtures";
import { isOutType, OUT_TYPES } from "../weights-tools/mapping";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: cli } = parseArgs({
  options: {
    types: { type: "string" },
    text: { type: "string", default: join(root, "docs/architecture.md") },
    context: { type: "string", default: "128" },
    chunks: { type: "string", default: "2" },
    threads: { type: "string", default: String(availableParallelism()) },
    help: { type: "boolean" },
  },
});
if (cli.help) {
  console.log("node --import tsx scripts/quant-quality.ts [--types q4_0,q4_k_m,...] [--text FILE] [--context 128] [--chunks 2] [--threads N]");
  process.exit(0);
}
const types = (cli.types ?? OUT_TYPES.filter((t) => t !== "f32").join(",")).split(",").map((s) => s.trim());
for (const t of types) if (!isOutType(t)) throw new Error(`--types: unknown type ${JSON.stringify(t)} (one of ${OUT_TYPES.join(", ")})`);

/** The fields of `perplexity --json` used here. */
interface Report {
  kl: { kld: { mean: number; mean_uncertainty: number; p99: number }; top1_agreement: number; top1_agreement_uncertainty: number; ppl_ratio: number };
}

const base = await synthGGUF("full2l", "f32");
const text = readFileSync(cli.text!);
console.log(
  `full2l synthetic model (random weights), KL(F32 ‖ type) over ${cli.chunks} chunks of ${cli.context} tokens of ${cli.text} (sha256 ${createHash("sha256").update(text).digest("hex").slice(0, 12)}), wasm engine, ${cli.threads} threads`,
);
console.log("\n| type | file MiB | vs F32 size | mean KL (nats) | p99 KL | top-1 agreement | PPL / PPL(F32) |\n|---|---|---|---|---|---|---|");
const baseSize = statSync(base).size;
for (const type of types) {
  const file = await synthGGUF("full2l", type);
  const args = ["bin/edgelm.mjs", "perplexity", "--model", file, "--kl-base", base, "--text", cli.text!, "--context", cli.context!, "--chunks", cli.chunks!, "--threads", cli.threads!, "--json"];
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    console.log(`| ${type} | — | — | failed: ${(r.stderr || r.stdout).trim().split("\n").pop()} | | | |`);
    continue;
  }
  const j = JSON.parse(r.stdout) as Report;
  const size = statSync(file).size;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(
    `| ${type} | ${(size / 2 ** 20).toFixed(1)} | ${(size / baseSize).toFixed(3)} | ${j.kl.kld.mean.toFixed(5)} ± ${j.kl.kld.mean_uncertainty.toFixed(5)} | ${j.kl.kld.p99.toFixed(5)} | ${pct(j.kl.top1_agreement)} ± ${pct(j.kl.top1_agreement_uncertainty)} | ${j.kl.ppl_ratio.toFixed(4)} |`,
  );
}
