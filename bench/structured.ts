/**
 * `npm run bench -- --structured`: what structured output costs on the 1.6B shape (synthetic Q4_0,
 * wasm engine, one thread, the model card's sampling: temperature 0.7, top_p 0.95).
 *
 * - Mask cost per token under a 10-property nested schema (test/generate/schemas.ts "nested10"):
 *   the time in TokenConstraint.apply and accept, against the decode step it rides on.
 * - The first token of a request whose schema was never seen, against an unconstrained request
 *   with the same prompt (each best of several runs, alternating). The vocabulary index is built
 *   once per process, before: its one-time cost is printed on its own line.
 *
 *   node --import tsx bench/structured.ts [--quick] [--tokens N]
 *
 * Timings only here, never in tests; the machine is shared, so compare within one run.
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchModel, promptTokens, root } from "./common";
import { createConstraint, generate, type TokenConstraint } from "../src/generate/index";
import { tokenIndex } from "../src/generate/token-mask";
import { loadWasmEngine } from "../src/engine/node";
import { loadTokenizer } from "../src/tokenizer/node";
import { SCHEMAS } from "../test/generate/schemas";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/structured.ts [--quick] [--tokens N]");

const { values: cli } = parseArgs({ options: { quick: { type: "boolean" }, tokens: { type: "string" } } });
const TOKENS = Number(cli.tokens ?? (cli.quick ? 24 : 64));
const RUNS = cli.quick ? 3 : 5;
const SAMPLING = { temperature: 0.7, topP: 0.95 };

const path = await benchModel();
const engine = await loadWasmEngine(path, { threads: 1 });
const tokenizer = await loadTokenizer(path);
const prompt = promptTokens(32);

let t = performance.now();
tokenIndex(tokenizer);
const indexMs = performance.now() - t;

/** Wraps a constraint to time its calls. */
function timed(c: TokenConstraint, acc: { ms: number; calls: number }): TokenConstraint {
  return {
    apply(l, s) {
      const t0 = performance.now();
      c.apply(l, s);
      acc.ms += performance.now() - t0;
      acc.calls++;
    },
    accept(id) {
      const t0 = performance.now();
      c.accept(id);
      acc.ms += performance.now() - t0;
    },
    get complete() {
      return c.complete;
    },
  };
}

/** Decode: ms per generated token after the first, and the first token's latency. */
async function run(constraint: TokenConstraint | undefined, seed: number, maxTokens = TOKENS): Promise<{ first: number; perToken: number; tokens: number }> {
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  for await (const ev of generate(engine, tokenizer, { prompt, maxTokens, seed, sampling: SAMPLING, constraint })) {
    if (ev.type !== "token") continue;
    if (n++ === 0) first = performance.now();
  }
  const end = performance.now();
  return { first: first - t0, perToken: n > 1 ? (end - first) / (n - 1) : NaN, tokens: n };
}

// Warm-up: the engine, the sampler and the matcher code paths.
await run(undefined, 0, 8);
await run(createConstraint({ text: { kind: "json_schema", schema: SCHEMAS.flat } }, tokenizer), 0, 8);

// 1. Mask cost per token under nested10, across seeds (a random model visits many states).
const mask = { ms: 0, calls: 0 };
let constrainedMs = 0;
let constrainedTokens = 0;
let plainMs = 0;
let plainTokens = 0;
for (let i = 0; i < RUNS; i++) {
  const p = await run(undefined, 100 + i);
  plainMs += p.perToken * (p.tokens - 1);
  plainTokens += p.tokens - 1;
  const c = await run(timed(createConstraint({ text: { kind: "json_schema", schema: SCHEMAS.nested10 } }, tokenizer), mask), 100 + i);
  constrainedMs += c.perToken * (c.tokens - 1);
  constrainedTokens += c.tokens - 1;
}
const maskPerToken = mask.ms / mask.calls;
const stepMs = plainMs / plainTokens;

// 2. First-token latency with a schema never seen before (a fresh property name defeats the cache).
const firstPlain: number[] = [];
const firstNew: number[] = [];
for (let i = 0; i < RUNS; i++) {
  firstPlain.push((await run(undefined, 200 + i, 1)).first);
  const schema = { ...SCHEMAS.nested10, properties: { [`fresh_${i}_${Date.now()}`]: { type: "boolean" }, ...(SCHEMAS.nested10 as any).properties } };
  t = performance.now();
  const c = createConstraint({ text: { kind: "json_schema", schema } }, tokenizer);
  const compileMs = performance.now() - t;
  firstNew.push((await run(c, 200 + i, 1)).first + compileMs);
}
const best = (xs: number[]) => Math.min(...xs);
const extra = best(firstNew) - best(firstPlain);

const rows = [
  ["vocabulary index (once per process)", `${indexMs.toFixed(0)} ms`, ""],
  ["decode step, unconstrained", `${stepMs.toFixed(1)} ms/token`, ""],
  ["decode step, nested10 schema", `${(constrainedMs / constrainedTokens).toFixed(1)} ms/token`, `${((constrainedMs / constrainedTokens / stepMs) * 100).toFixed(0)}% of unconstrained`],
  ["mask + accept per token, nested10", `${maskPerToken.toFixed(2)} ms/token`, `${((maskPerToken / stepMs) * 100).toFixed(1)}% of a decode step (target ≤ 10%)`],
  ["first token, unconstrained (best)", `${best(firstPlain).toFixed(0)} ms`, ""],
  ["first token, schema never seen (best)", `${best(firstNew).toFixed(0)} ms`, `+${extra.toFixed(0)} ms (target ≤ 50 ms)`],
];
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log(`structured output on ${path.split("/").pop()}, wasm engine (${engine.kernels.kind}), 1 thread, temperature 0.7 top_p 0.95, ${RUNS} runs of ${TOKENS} tokens`);
for (const r of rows) console.log(`${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}`);
mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `structured-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ indexMs, stepMs, constrainedStepMs: constrainedMs / constrainedTokens, maskPerToken, firstPlain, firstNew, kernels: engine.kernels.kind }, null, 2));
console.log(`wrote ${out}`);
await engine.close?.();
