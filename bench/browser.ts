/**
 * edgelm/local in headless Chromium against the same engine in Node, one thread each, in one run:
 * decode tok/s (a 32-token prompt, then 64 greedy tokens, ids from the generator on both sides),
 * and the on-device load times — the first visit (download from a local server into the engine
 * and the Cache API) against the second (a 304, then the Cache API). Models: the synthetic tiny
 * and full2l (every tensor shape of the 1.6B, two layers) presets at Q4_0. Prints a table and
 * writes bench/results/browser-<time>.json.
 *
 *   node --import tsx bench/browser.ts [--quick]     (npm run bench -- --browser)
 *   --quick   the tiny model only, 16 decoded tokens
 */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadWasmEngine } from "../src/engine/node";
import { generate } from "../src/generate/generator";
import { openGGUF } from "../src/gguf/node";
import { Tokenizer } from "../src/tokenizer/index";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { chromium } from "playwright-core";
import { chromiumPath } from "../test/helpers/browser";
import { startGGUFServer } from "../test/helpers/gguf-static-server";
import { buildLocalBundles, LOCAL_TEST_PAGE } from "../test/helpers/local-page";
import { synthGGUF } from "../weights-tools/fixtures";
import { promptTokens, root } from "./common";
import { exitOnHelp } from "./usage";

exitOnHelp("usage: node --import tsx bench/browser.ts [--quick]     (npm run bench -- --browser)");

const { values: cli } = parseArgs({ options: { quick: { type: "boolean" } } });
const PROMPT = 32;
const DECODE = cli.quick ? 16 : 64;
const presets = cli.quick ? ["tiny"] : ["tiny", "full2l"];

interface Row {
  model: string;
  mb: number;
  node_load_s: number;
  node_decode_tok_s: number;
  node_kernels: string;
  browser_first_load_s: number;
  browser_second_load_s: number;
  second_source: string;
  browser_decode_tok_s: number;
  browser_kernels: string;
  same_ids: boolean;
}

const tokS = (n: number, ms: number) => (n - 1) / (ms / 1000);

async function nodeRun(path: string): Promise<{ load_s: number; tok_s: number; ids: number[]; kernels: string }> {
  const t0 = performance.now();
  const engine = await loadWasmEngine(path, { threads: 1, sequences: 1 });
  const load_s = (performance.now() - t0) / 1000;
  const header = await openGGUF(path);
  await header.close();
  const ids: number[] = [];
  let first = 0, last = 0;
  for await (const ev of generate(engine, Tokenizer.fromGGUF(header.metadata), { prompt: promptTokens(PROMPT), maxTokens: DECODE, sampling: { temperature: 0 }, seed: 0, stopTokenIds: [] })) {
    if (ev.type !== "token") continue;
    ids.push(ev.id);
    last = performance.now();
    if (ids.length === 1) first = last;
  }
  const kernels = engine.name;
  await engine.close();
  return { load_s, tok_s: tokS(ids.length, last - first), ids, kernels };
}

const files = await buildLocalBundles();
const rows: Row[] = [];
let version = "";
try {
  for (const preset of presets) {
    const path = await synthGGUF(preset, "q4_0");
    const node = await nodeRun(path);
    const server = await startGGUFServer({ files, pages: { "/": { body: LOCAL_TEST_PAGE, type: "text/html" } }, model: { route: "/model.gguf", path } });
    // A profile on disk, as a user's is: a fresh context keeps the Cache API in memory, which refuses large entries.
    const profile = mkdtempSync(join(tmpdir(), "edgelm-chromium-"));
    const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath().path, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    version = context.browser()?.version() ?? version;
    const page = context.pages()[0] ?? (await context.newPage());
    type Loaded = { info?: { source: string; engine: string }; error?: { message: string }; ms: number };
    const load = () => page.evaluate(() => (window as unknown as { loadModel(): Promise<Loaded> }).loadModel());
    await page.goto(`${server.url}/`);
    const first = await load();
    if (first.error) throw new Error(`${preset}: ${first.error.message}`);
    await page.reload();
    const second = await load();
    if (second.error) throw new Error(`${preset}: ${second.error.message}`);
    const got = await page.evaluate(([p, n]) => (window as unknown as { tokens(p: number[], n: number): Promise<{ ids: number[]; decodeMs: number }> }).tokens(p, n), [promptTokens(PROMPT), DECODE] as const);
    rows.push({
      model: `${preset} q4_0`,
      mb: statSync(path).size / 1e6,
      node_load_s: node.load_s,
      node_decode_tok_s: node.tok_s,
      node_kernels: node.kernels,
      browser_first_load_s: first.ms / 1000,
      browser_second_load_s: second.ms / 1000,
      second_source: second.info!.source,
      browser_decode_tok_s: tokS(got.ids.length, got.decodeMs),
      browser_kernels: second.info!.engine,
      same_ids: JSON.stringify(got.ids) === JSON.stringify(node.ids),
    });
    await context.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
} finally {
  // Each model's browser is closed in its loop; nothing else to release.
}

const f = (n: number, d = 2) => n.toFixed(d);
console.log(`\nedgelm/local (headless Chromium ${version}) vs Node ${process.version}, one thread, ${PROMPT}-token prompt, ${DECODE} greedy tokens\n`);
console.log("| model | MB | Node decode tok/s | browser decode tok/s | browser / Node | same ids | Node load s | browser 1st load s (network) | 2nd load s (cache) | 2nd / 1st |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.model} | ${f(r.mb, 1)} | ${f(r.node_decode_tok_s, 1)} | ${f(r.browser_decode_tok_s, 1)} | ${f(r.browser_decode_tok_s / r.node_decode_tok_s)}× | ${r.same_ids ? "yes" : "NO"} | ${f(r.node_load_s)} | ${f(r.browser_first_load_s)} | ${f(r.browser_second_load_s)} (${r.second_source}) | ${f(r.browser_second_load_s / r.browser_first_load_s)}× |`,
  );
}
for (const r of rows) console.log(`\n${r.model}: Node ${r.node_kernels}\n${r.model}: browser ${r.browser_kernels}`);
const dir = join(root, "bench", "results");
mkdirSync(dir, { recursive: true });
const out = join(dir, `browser-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, node: process.version, chromium: version, prompt: PROMPT, decode: DECODE, rows }, null, 2));
console.log(`\n→ ${out}`);
