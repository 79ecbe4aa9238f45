/**
 * The playground's "on this device" mode in real Chromium: the page served by the Worker (workerd)
 * loads edgelm/local's worker and kernels from /local/, the tiny model from the Worker's file route,
 * and answers a greedy completion with the same text the edge API gives.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BROWSER_TESTS, launchChromium, screenshotOnFailure } from "../helpers/browser";
import { startWorker, testModelPath, waitHealthy, type WorkerUnderTest } from "../worker/harness";

const VARS = { MODEL_KEY: "models/tiny-q4_0.gguf", MODEL_ID: "edgelm-tiny", QUEUE_DEPTH: "4", LOAD_WAIT_MS: "60000", DECODE_TOKENS_PER_S: "0", SERVE_MODEL_FILE: "true" };

describe.runIf(BROWSER_TESTS)("playground, on this device", () => {
  let worker: WorkerUnderTest;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    [worker, browser] = await Promise.all([startWorker({ vars: VARS, r2Model: await testModelPath() }), launchChromium()]);
    await waitHealthy(worker);
    page = await browser.newPage();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await worker?.close();
  });
  afterEach(async (ctx) => {
    await screenshotOnFailure(page, `playground-device-${ctx.task.name}`, ctx.task.result?.state === "fail");
  });

  /** One greedy completion through the page with the chosen backend; its text and route. */
  async function complete(backend: string): Promise<{ text: string; route: string }> {
    await page.selectOption("#backend", backend);
    await page.fill("#prompt", "Once upon a time");
    await page.fill("#max-tokens", "12");
    await page.fill("#temperature", "0");
    await page.click("#run");
    await page.waitForSelector("#status:text-matches('^(done|stopped)|error')", { timeout: 60_000 });
    expect(await page.getAttribute("#status", "class")).not.toBe("error");
    return { text: (await page.textContent("#output")) ?? "", route: (await page.textContent("#route")) ?? "" };
  }

  it("loads the engine and the model in the page and answers as the edge does", async () => {
    await page.goto(`${worker.url}/`);
    expect(await page.$$eval("#backend option", (os) => os.map((o) => (o as HTMLOptionElement).value))).toEqual(["edge", "device"]);
    const edge = await complete("edge");
    const device = await complete("device");
    expect(device.route).toBe("on this device");
    expect(edge.route).not.toBe("on this device");
    expect(device.text.length).toBeGreaterThan(0);
    expect(device.text).toBe(edge.text);
  });

  it("with API keys, the device asks for the key like the edge does and then loads with it", async () => {
    const KEY = "sk-edgelm-test-device-01";
    const keyed = await startWorker({ vars: { ...VARS, API_KEYS: JSON.stringify({ [KEY]: "free" }) }, r2Model: await testModelPath() });
    try {
      await waitHealthy(keyed);
      const p = await browser.newPage();
      await p.goto(`${keyed.url}/`);
      await p.selectOption("#backend", "device");
      await p.fill("#prompt", "Hello");
      await p.fill("#max-tokens", "4");
      await p.click("#run");
      await p.waitForSelector("#key-dialog[open]");
      await p.fill("#api-key", KEY);
      await p.click("#key-save");
      await p.waitForSelector("#status:text-matches('^done')", { timeout: 60_000 });
      expect(await p.textContent("#route")).toBe("on this device");
      await p.close();
    } finally {
      await keyed.close();
    }
  });

  it("the worker script and kernels are open files, like the page", async () => {
    for (const name of ["edgelm-local-worker.js", "kernels-simd.wasm"]) {
      const res = await fetch(`${worker.url}/local/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(name.endsWith(".js") ? /javascript/ : /wasm/);
    }
    expect((await fetch(`${worker.url}/local/nope.js`)).status).toBe(404);
  });
});
