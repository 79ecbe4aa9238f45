/**
 * Many users at once: `edgelm serve` (the wasm engine, one thread, batching up
 * to 8 generations) against llama.cpp with the same number of sequences in one
 * context, same file, same thread count, in one run. At each concurrency
 * level, that many closed-loop clients send streamed completions back to back
 * (a distinct token-id prompt each, the model card's sampling) until
 * `--requests` have run; reported: aggregate generated tokens/s, time to first
 * token and inter-token latency (p50/p99), and the ratio to one stream and to
 * llama.cpp. Then the prefix-reuse case: a 500-token system prompt with a
 * 20-token user turn and a 32-token reply, then a second 20-token turn; the
 * second turn's time to first token against the first's.
 *
 *   npm run bench -- --concurrency          (this script; or directly:)
 *   node --import tsx bench/concurrency.ts [--quick] [--requests 100] [--levels 1,2,4,8] [--prompt 16] [--decode 32]
 *
 * Timings only here, never in tests; compare ratios within one run, on a quiet machine.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sseEventsOf } from "../test/helpers/sse";
import { benchModel, promptTokens, root } from "./common";
import { summarize, type ConcurrencyFigures, type RequestTiming } from "./concurrency-stats";

const { values: cli } = parseArgs({
  options: { quick: { type: "boolean" }, requests: { type: "string" }, levels: { type: "string" }, prompt: { type: "string" }, decode: { type: "string" }, help: { type: "boolean" }, concurrency: { type: "boolean" } },
});
if (cli.help) {
  console.log("usage: node --import tsx bench/concurrency.ts [--quick] [--requests N] [--levels 1,2,4,8] [--prompt 16] [--decode 32]");
  process.exit(0);
}
const quick = cli.quick ?? false;
const REQUESTS = Number(cli.requests ?? (quick ? 12 : 100));
const LEVELS = (cli.levels ?? (quick ? "1,4" : "1,2,4,8")).split(",").map(Number);
const PROMPT = Number(cli.prompt ?? 16);
const DECODE = Number(cli.decode ?? (quick ? 16 : 32));
const MAX_BATCH = Math.max(...LEVELS);

/** `edgelm serve` in a child process, pinned to one thread; resolves with its URL once the model is loaded. */
async function startServe(path: string): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, [join(root, "bin/edgelm.mjs"), "serve", "--model", path, "--port", "0", "--threads", "1", "--max-batch", String(MAX_BATCH), "--queue-depth", "256"], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      const m = err.match(/listening on (http:\/\/\S+),/);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`edgelm serve exited (${code}): ${err.slice(-500)}`)));
  });
  let stopping = false;
  child.once("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`edgelm serve exited (${code ?? signal}): ${err.slice(-2000)}\n`);
  });
  for (const deadline = Date.now() + 300_000; ; ) {
    const res = await fetch(`${url}/health`);
    if (res.status === 200) break;
    if (Date.now() > deadline) throw new Error("edgelm serve did not load the model within 300 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    stop: () => {
      stopping = true;
      child.kill();
    },
  };
}

/** One streamed completion; token arrival times measured at the client. */
async function stream(url: string, prompt: number[], maxTokens: number, seed: number, temperature = 0.7): Promise<RequestTiming & { cached?: number }> {
  const start = performance.now();
  const send = () =>
    fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature, top_p: 0.95, seed, stream: true, stream_options: { include_usage: true } }),
    });
  // Kept-alive connections the server closed while the peer ran are not retried by fetch for a POST: retry on a new one.
  const res = await send().catch(send).catch(send);
  if (res.status !== 200) throw new Error(`completion: HTTP ${res.status}: ${await res.text()}`);
  const tokens: number[] = [];
  let cached: number | undefined;
  for await (const event of sseEventsOf(res)) {
    const block = event.trimEnd();
    if (!block.startsWith("data: ") || block === "data: [DONE]") continue;
    const ev = JSON.parse(block.slice(6)) as { choices: { finish_reason: string | null }[]; usage?: { prompt_tokens_details?: { cached_tokens: number } } };
    if (ev.choices[0]?.finish_reason === null) tokens.push(performance.now());
    if (ev.usage) cached = ev.usage.prompt_tokens_details?.cached_tokens;
  }
  return { start, tokens, cached };
}

async function edgelmLevel(url: string, c: number): Promise<ConcurrencyFigures> {
  let next = 0;
  const timings: RequestTiming[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      for (let r = next++; r < REQUESTS; r = next++) timings.push(await stream(url, promptTokens(PROMPT + r).slice(r), DECODE, r));
    }),
  );
  return summarize(timings, (performance.now() - t0) / 1000);
}

function llamaLevel(path: string, c: number): ConcurrencyFigures & { detail: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "bench/concurrency-llama.ts"), "--model", path, "--concurrency", String(c), "--requests", String(REQUESTS), "--prompt", String(PROMPT), "--decode", String(DECODE), "--threads", "1"], {
    cwd: root,
    encoding: "utf8",
    timeout: 1_800_000,
    maxBuffer: 16 << 20,
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`the llama.cpp peer failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
  }
}

const path = await benchModel();
const serve = await startServe(path);
const rows: { level: number; edgelm: ConcurrencyFigures; llama: ConcurrencyFigures }[] = [];
let prefix: { first_ms: number; second_ms: number; cached: number };
try {
  await stream(serve.url, promptTokens(PROMPT), 4, 0); // warm-up: first-call costs are not the steady state
  for (const c of LEVELS) {
    process.stderr.write(`concurrency ${c}: edgelm …\n`);
    const edgelm = await edgelmLevel(serve.url, c);
    process.stderr.write(`concurrency ${c}: llama.cpp …\n`);
    rows.push({ level: c, edgelm, llama: llamaLevel(path, c) });
  }
  // A chat with a long system prompt: the second turn should prefill only what is new.
  const system = promptTokens(520).slice(20);
  const turn1 = [...system, ...promptTokens(20)];
  const a = await stream(serve.url, turn1, 32, 1, 0);
  const reply = promptTokens(52).slice(20); // stands in for the reply's token ids (the API takes ids, not the sampled text)
  const b = await stream(serve.url, [...turn1, ...reply, ...promptTokens(40).slice(20)], 1, 2, 0);
  prefix = { first_ms: a.tokens[0] - a.start, second_ms: b.tokens[0] - b.start, cached: b.cached ?? 0 };
} finally {
  serve.stop();
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const single = rows.find((r) => r.level === 1);
const lines = [
  `model: ${path}; ${REQUESTS} requests per level, prompt ${PROMPT} tokens, ${DECODE} generated (temperature 0.7, top_p 0.95); one thread each; edgelm serve --max-batch ${MAX_BATCH}`,
  "",
  "| streams | engine | aggregate tok/s | vs its 1 stream | vs llama.cpp | TTFT p50 / p99 ms | inter-token p50 / p99 ms |",
  "|---|---|---|---|---|---|---|",
  ...rows.flatMap((r) => [
    `| ${r.level} | edgelm (Node, wasm) | ${f(r.edgelm.aggregate_tok_s)} | ${single ? f(r.edgelm.aggregate_tok_s / single.edgelm.aggregate_tok_s, 2) + "×" : "—"} | ${f(r.edgelm.aggregate_tok_s / r.llama.aggregate_tok_s, 2)}× | ${f(r.edgelm.ttft_p50_ms, 0)} / ${f(r.edgelm.ttft_p99_ms, 0)} | ${f(r.edgelm.itl_p50_ms, 0)} / ${f(r.edgelm.itl_p99_ms, 0)} |`,
    `| ${r.level} | llama.cpp, ${r.level} sequences | ${f(r.llama.aggregate_tok_s)} | ${single ? f(r.llama.aggregate_tok_s / single.llama.aggregate_tok_s, 2) + "×" : "—"} | 1× | ${f(r.llama.ttft_p50_ms, 0)} / ${f(r.llama.ttft_p99_ms, 0)} | ${f(r.llama.itl_p50_ms, 0)} / ${f(r.llama.itl_p99_ms, 0)} |`,
  ]),
  "",
  `prefix reuse (edgelm): first turn (520-token prompt) first token after ${f(prefix.first_ms, 0)} ms; second turn (572 tokens, ${prefix.cached} from the prefix cache) after ${f(prefix.second_ms, 0)} ms: ${f((100 * prefix.second_ms) / prefix.first_ms, 0)}% of the first`,
];
console.log(lines.join("\n"));
mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results", `concurrency-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), model: path, requests: REQUESTS, prompt: PROMPT, decode: DECODE, machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, rows, prefix }, null, 2));
console.log(`\nwrote ${out}`);
