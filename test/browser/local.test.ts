/**
 * edgelm/local in real Chromium: the engine in a Web Worker loads a GGUF from a local server
 * (ETag, Range, request counts: test/helpers/gguf-static-server.ts), reports download progress,
 * stores the verified file in the Cache API, and generates what the same engine generates in
 * Node — token ids from the generator, and the OpenAI SSE text through edgelm/client's fetch
 * option. A reload reads the cache (a 304, no second download), a new ETag downloads again, and a
 * body cut halfway is neither used nor stored.
 */
import { statSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GenerationQueue, handleRequest } from "../../src/api/index";
import { loadWasmEngine } from "../../src/engine/node";
import { generate } from "../../src/generate/generator";
import { openGGUF } from "../../src/gguf/node";
import { loadServedModel } from "../../src/node/server";
import { Tokenizer } from "../../src/tokenizer/index";
import { synthGGUF } from "../../weights-tools/fixtures";
import { BROWSER_TESTS, launchChromium, screenshotOnFailure } from "../helpers/browser";
import { startGGUFServer, type GGUFServer } from "../helpers/gguf-static-server";
import { buildLocalBundles, LOCAL_TEST_PAGE } from "../helpers/local-page";

const PROMPT_TEXT = "The quick brown fox";
const MAX_TOKENS = 16;

interface Loaded {
  info?: { source: string; cached: boolean; bytes: number; etag: string | null; engine: string };
  error?: { code: string; message: string };
  progress: { phase: string; loaded: number; total: number }[];
  warnings: string[];
}

describe.runIf(BROWSER_TESTS)("edgelm/local in Chromium", () => {
  let server: GGUFServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let modelPath: string;
  let size: number;
  let promptIds: number[];

  beforeAll(async () => {
    modelPath = await synthGGUF("tiny", "q4_0");
    size = statSync(modelPath).size;
    const files = await buildLocalBundles();
    server = await startGGUFServer({ files, pages: { "/": { body: LOCAL_TEST_PAGE, type: "text/html" } }, model: { route: "/model.gguf", path: modelPath } });
    const header = await openGGUF(modelPath);
    await header.close();
    promptIds = Tokenizer.fromGGUF(header.metadata).encode(PROMPT_TEXT);
    browser = await launchChromium();
    context = await browser.newContext();
    page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && console.error(`[page] ${m.text()}`));
    await page.goto(`${server.url}/`);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  afterEach(async (ctx) => {
    await screenshotOnFailure(page, `local-${ctx.task.name}`, ctx.task.result?.state === "fail");
  });

  const load = (): Promise<Loaded> => page.evaluate(() => (window as unknown as { loadModel(): Promise<Loaded> }).loadModel());
  const reload = async () => {
    await page.reload();
    return load();
  };

  it("loads the model over the network with increasing progress events that end at the file's size", async () => {
    const r = await load();
    expect(r.error).toBeUndefined();
    expect(r.info).toMatchObject({ source: "network", cached: true, bytes: size, etag: '"v1"' });
    expect(r.info!.engine).toMatch(/self-test passed/);
    const dl = r.progress.filter((p) => p.phase === "download");
    expect(dl.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < dl.length; i++) expect(dl[i].loaded).toBeGreaterThan(dl[i - 1].loaded);
    expect(dl.at(-1)).toEqual({ phase: "download", loaded: size, total: size });
    expect(server.counts.downloads).toBe(1);
  });

  it("generates the same greedy token ids as the same engine in Node", async () => {
    const engine = await loadWasmEngine(modelPath, { threads: 1 });
    const header = await openGGUF(modelPath);
    await header.close();
    const want: number[] = [];
    for await (const ev of generate(engine, Tokenizer.fromGGUF(header.metadata), { prompt: promptIds, maxTokens: MAX_TOKENS, sampling: { temperature: 0 }, seed: 0, stopTokenIds: [] })) {
      if (ev.type === "token") want.push(ev.id);
    }
    await engine.close();
    const got = await page.evaluate(([p, n]) => (window as unknown as { tokens(p: number[], n: number): Promise<{ ids: number[] }> }).tokens(p, n), [promptIds, MAX_TOKENS] as const);
    expect(want).toHaveLength(MAX_TOKENS);
    expect(got.ids).toEqual(want);
  });

  it("streams the OpenAI chunks edgelm/client reads from a server: the same text as the API in Node", async () => {
    const request = { prompt: PROMPT_TEXT, max_tokens: MAX_TOKENS, temperature: 0 };
    const model = await loadServedModel(modelPath, { engine: "wasm", threads: 1 });
    const res = await handleRequest(
      new Request("http://node/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...request, stream: false }) }),
      { model: () => ({ status: "ready", model }), queue: new GenerationQueue() },
    );
    const nodeAnswer = (await res.json()) as { choices: { text: string; finish_reason: string }[] };
    await model.engine.close?.();
    const got = await page.evaluate((req) => (window as unknown as { complete(r: unknown): Promise<{ text: string; chunks: number; finishReason: string; usage: { completion_tokens: number } }> }).complete(req), request);
    expect(got.chunks).toBeGreaterThan(1);
    expect(got.text).toBe(nodeAnswer.choices[0].text);
    expect(got.finishReason).toBe(nodeAnswer.choices[0].finish_reason);
  });

  it("a reload loads from the cache: a 304, no second download", async () => {
    const r = await reload();
    expect(r.error).toBeUndefined();
    expect(r.info).toMatchObject({ source: "cache", cached: true, bytes: size });
    expect(server.counts.downloads).toBe(1);
    expect(server.counts.notModified).toBe(1);
    expect(r.progress.filter((p) => p.phase === "download")).toEqual([]);
    expect(r.progress.at(-1)).toEqual({ phase: "cache", loaded: size, total: size });
  });

  it("a changed ETag downloads the file again and stores the new version", async () => {
    server.model.etag = '"v2"';
    const r = await reload();
    expect(r.info).toMatchObject({ source: "network", cached: true, etag: '"v2"' });
    expect(server.counts.downloads).toBe(2);
    expect(await page.evaluate(() => (window as unknown as { cachedEntry(): Promise<unknown> }).cachedEntry())).toEqual({ etag: '"v2"', size });
  });

  it("a download cut halfway is neither used nor stored, and the next load downloads again", async () => {
    server.model.etag = '"v3"';
    server.model.truncate = true;
    const r = await reload();
    expect(r.info).toBeUndefined();
    expect(r.error?.code).toBe("truncated");
    expect(r.error?.message).toMatch(/not used or stored/);
    expect(server.counts.downloads).toBe(3);
    expect(await page.evaluate(() => (window as unknown as { cachedEntry(): Promise<unknown> }).cachedEntry())).toBeNull();

    server.model.truncate = false;
    const again = await reload();
    expect(again.info).toMatchObject({ source: "network", cached: true, etag: '"v3"' });
    expect(server.counts.downloads).toBe(4);
  });

  it("a full storage quota: the model still loads, is not stored, and the page is told why", async () => {
    // Chromium's DevTools protocol can shrink this origin's quota below the file's size.
    const cdp = await context.newCDPSession(page);
    await cdp.send("Storage.overrideQuotaForOrigin", { origin: server.url, quotaSize: 1024 });
    server.model.etag = '"v4"';
    const r = await reload();
    expect(r.error).toBeUndefined();
    expect(r.info).toMatchObject({ source: "network", cached: false });
    expect(r.warnings.join("\n")).toMatch(/storage quota is full/);
    await cdp.send("Storage.overrideQuotaForOrigin", { origin: server.url });
  });
});
