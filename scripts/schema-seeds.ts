/**
 * The opt-in, larger run of the structured-output test: every test schema (test/generate/schemas.ts)
 * sampled at temperature 1 with many seeds on the tiny random-weight model, max_tokens 256. Every
 * output that stops must parse and validate with ajv; every cut one must be a prefix the matcher
 * accepts. Prints one row per schema; docs/structured-output.md keeps the last result.
 *
 *   node --import tsx scripts/schema-seeds.ts [--seeds 200] [--schema NAME]
 */
import Ajv from "ajv";
import { parseArgs } from "node:util";
import { compileSchema } from "../src/generate/index";
import { advance, initial } from "../src/generate/json-matcher";
import { loadServedModel } from "../src/node/server";
import { synthGGUF } from "../weights-tools/fixtures";
import { sampleUnderSchema } from "../test/generate/sample-schema";
import { SCHEMAS } from "../test/generate/schemas";

const { values: cli } = parseArgs({ options: { seeds: { type: "string" }, schema: { type: "string" }, help: { type: "boolean", short: "h" } } });
if (cli.help) {
  console.log("usage: node --import tsx scripts/schema-seeds.ts [--seeds N (default 200)] [--schema NAME]\nschemas: " + Object.keys(SCHEMAS).join(", "));
  process.exit(0);
}
const SEEDS = Number(cli.seeds ?? 200);
if (!Number.isInteger(SEEDS) || SEEDS < 1) throw new Error(`--seeds must be a positive integer, got ${cli.seeds}`);
const names = cli.schema ? [cli.schema] : Object.keys(SCHEMAS);
for (const n of names) if (!(n in SCHEMAS)) throw new Error(`unknown schema ${n}; known: ${Object.keys(SCHEMAS).join(", ")}`);

const ajv = new Ajv({ strict: false });
const enc = new TextEncoder();
const model = await loadServedModel(await synthGGUF("tiny", "f32"), { modelId: "tiny", engine: "wasm", threads: 1, maxBatch: 1 });
let failed = false;
console.log("schema      seeds  stop   valid  length-prefix  mean tokens");
for (const name of names) {
  const validate = ajv.compile(SCHEMAS[name]);
  const prompt = model.tokenizer.encode(`Answer in JSON (${name}):`);
  let stops = 0;
  let valid = 0;
  let prefixes = 0;
  let tokens = 0;
  for (let seed = 0; seed < SEEDS; seed++) {
    const { text, finish, tokens: n } = await sampleUnderSchema(model, SCHEMAS[name], prompt, seed);
    tokens += n;
    if (finish === "stop") {
      stops++;
      try {
        if (validate(JSON.parse(text))) valid++;
      } catch {
        /* counted as invalid */
      }
    } else if (advance(initial(compileSchema(SCHEMAS[name])), enc.encode(text)).length) prefixes++;
    process.stderr.write(`\r${name} ${seed + 1}/${SEEDS}`);
  }
  process.stderr.write("\r\x1b[K");
  const ok = valid === stops && prefixes === SEEDS - stops && stops / SEEDS >= 0.95;
  failed ||= !ok;
  console.log(`${name.padEnd(10)} ${String(SEEDS).padStart(6)} ${String(stops).padStart(5)} ${String(valid).padStart(7)} ${String(prefixes).padStart(14)} ${(tokens / SEEDS).toFixed(1).padStart(12)}${ok ? "" : "  FAIL"}`);
}
await model.engine.close?.();
process.exit(failed ? 1 : 0);
