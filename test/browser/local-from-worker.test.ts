/**
 * The on-device engine fed by the edge: a page on another origin loads the tiny model from the
 * Worker's GET /v1/models/{id}/file (workerd, weights in local R2, CORS), with progress, generates
 * the greedy tokens the same engine generates in Node, and after a reload reads the file from its
 * Cache API copy (the Worker answers the revalidation with a 304, nothing is downloaded again).
 */
import { statSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadWasmEngine } from "../../src/engine/node";
import { generate } from "../../src/generate/generator";
import { openGGUF } from "../../src/gguf/node";
import { Tokenizer } from "../../src/tokenizer/index";
import { BROWSER_TESTS, launchChromium, screenshotOnFailure } from "../helpers/browser";
import { startGGUFServer, type GGUFServer } from "../helpers/gguf-static-server";
import { buildLocalBundles, LOCAL_TEST_PAGE } from "../helpers/local-page";
import { startWorker, testModelPath, type WorkerUnderTest } from "../worker/harness";

const MODEL_ID = "edgelm-tiny";

interface Loaded {
  info?: { source: string; cached: boolean; bytes: number; etag: string | null };
  error?: { code: string; message: string };
  progress: { phase: string; loaded: number; total: number }[];
}

describe.runIf(BROWSER_TESTS)("edgelm/local loads its model from the Worker", () => {
  let pages: GGUFServer;
  let worker: WorkerUnderTest;
  let browser: Browser;
  let page: Page;
  let modelPath: string;
  let fileURL: string;

  beforeAll(async () => {
    modelPath = await testModelPath();
    // The page and the bundles come from their own origin; the model from the Worker's.
    pages = await startGGUFServer({ files: await buildLocalBundles(), pages: { "/": { body: LOCAL_TEST_PAGE, type: "text/html" } }, model: { route: "/unused.gguf", path: modelPath } });
    worker = await startWorker({ vars: { MODEL_KEY: "models/tiny-q4_0.gguf", MODEL_ID, SERVE_MODEL_FILE: "true", CORS_ORIGINS: pages.url }, r2Model: modelPath });
    fileURL = `${worker.url}/v1/models/${MODEL_ID}/file`;
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    await page.goto(`${pages.url}/`);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await worker?.close();
    await pages?.close();
  });
  afterEach(async (ctx) => {
    await screenshotOnFailure(page, `local-from-worker-${ctx.task.name}`, ctx.task.result?.state === "fail");
  });

  const load = (): Promise<Loaded> => page.evaluate((model) => (window as unknown as { loadModel(o: object): Promise<Loaded> }).loadModel({ model }), fileURL);

  it("downloads with progress and generates the same greedy tokens as Node", async () => {
    const size = statSync(modelPath).size;
    const r = await load();
    expect(r.error).toBeUndefined();
    expect(r.info).toMatchObject({ source: "network", cached: true, bytes: size });
    const dl = r.progress.filter((p) => p.phase === "download");
    expect(dl.length).toBeGreaterThanOrEqual(2);
    expect(dl.at(-1)).toEqual({ phase: "download", loaded: size, total: size });

    const header = await openGGUF(modelPath);
    await header.close();
    const prompt = Tokenizer.fromGGUF(header.metadata).encode("Once upon a time");
    const engine = await loadWasmEngine(modelPath, { threads: 1 });
    const want: number[] = [];
    for await (const ev of generate(engine, Tokenizer.fromGGUF(header.metadata), { prompt, maxTokens: 12, sampling: { temperature: 0 }, seed: 0, stopTokenIds: [] })) if (ev.type === "token") want.push(ev.id);
    await engine.close();
    const got = await page.evaluate(([p, n]) => (window as unknown as { tokens(p: number[], n: number): Promise<{ ids: number[] }> }).tokens(p, n), [prompt, 12] as const);
    expect(got.ids).toEqual(want);
  });

  it("a reload reads the cached copy: the Worker says 304, nothing is downloaded", async () => {
    await page.reload();
    const r = await load();
    expect(r.error).toBeUndefined();
    expect(r.info).toMatchObject({ source: "cache", cached: true });
    expect(r.progress.filter((p) => p.phase === "download")).toEqual([]);
  });
});
