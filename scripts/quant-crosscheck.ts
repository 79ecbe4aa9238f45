/**
 * The llama.cpp cross-check of test/model/llama-quant-crosscheck.test.ts at
 * every 1.6B tensor shape (opt-in, not part of `npm test`: each type writes a
 * ~0.3–0.9 GB file and runs the 100352 × 2048 head on both sides). Prints one
 * row per type; the last results are in docs/quantization.md.
 *
 *   node --import tsx scripts/quant-crosscheck.ts [--help]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { seededRandom } from "../src/generate/sampler";
import { isOutType, OUT_TYPES, type OutType } from "../weights-tools/quant-mix";
import { isPresetName, writeSynthGGUF } from "../weights-tools/synth";
import { crosscheckFile } from "../test/helpers/distributions";

const DEFAULT_TYPES: OutType[] = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"];

const HELP = `Usage: node --import tsx scripts/quant-crosscheck.ts [options]

For each type: writes the synthetic preset with our quantizers and llama-quantize's
per-tensor mix (weights-tools/quant-mix.ts), then compares llama.cpp's next-token
distributions (node-llama-cpp, CPU) with our reference pass on the same file,
teacher-forced over random token ids: mean and largest KL(llama.cpp ‖ ours) in nats,
largest |Δ log p|, and top-1 agreement where our top token leads by > 0.05.

Options:
  --preset NAME     synth preset (default full2l)
  --types LIST      comma list of ${OUT_TYPES.join(", ")}
                    (default ${DEFAULT_TYPES.join(",")})
  --positions N     teacher-forced positions per type (default 8)
  --help            this text`;

const { values } = parseArgs({ options: { preset: { type: "string" }, types: { type: "string" }, positions: { type: "string" }, help: { type: "boolean" } } });
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const preset = values.preset ?? "full2l";
const types = values.types ? values.types.split(",").map((s) => s.trim()) : DEFAULT_TYPES;
const positions = Number(values.positions ?? 8);
const bad = types.filter((t) => !isOutType(t));
if (!isPresetName(preset) || bad.length || !Number.isInteger(positions) || positions < 1) {
  console.error(!isPresetName(preset) ? `unknown preset ${preset}` : bad.length ? `unknown type(s) ${bad.join(", ")}` : `--positions must be a positive integer`);
  console.error(HELP);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), "edgelm-quant-crosscheck-"));
const r = seededRandom(11);
const tokens = Array.from({ length: positions }, () => Math.floor(r() * 100256));
console.log(`| type | file | mean KL | max KL | max \\|Δ log p\\| | top-1 (clear positions) |`);
console.log(`|---|---|---|---|---|---|`);
try {
  for (const type of types as OutType[]) {
    const path = join(dir, `${preset}-${type}.gguf`);
    await writeSynthGGUF(preset, path, type, 0, { onWarning: () => {} });
    const size = statSync(path).size;
    const d = await crosscheckFile(path, tokens);
    console.log(`| ${type} | ${(size / 2 ** 20).toFixed(0)} MiB | ${d.meanKL.toExponential(1)} | ${d.maxKL.toExponential(1)} | ${d.maxDiff.toFixed(3)} | ${d.agree}/${d.clear} of ${positions} |`);
    rmSync(path);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
