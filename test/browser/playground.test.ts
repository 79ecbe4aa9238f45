/**
 * The playground page in real Chromium against the Worker in workerd (the tiny model from local
 * R2): answers stream into the page, Stop frees the engine, chat keeps its history, and a key is
 * asked for when the API wants one. A failed test leaves a screenshot in test-results/.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { BROWSER_TESTS, launchChromium, screenshotOnFailure } from "../helpers/browser";
import { requestLines, startWorker, testModelPath, waitHealthy, type WorkerUnderTest } from "../worker/harness";

const KEY = "sk-edgelm-test-page-0001";
const VARS = {
  MODEL_KEY: "models/tiny-q4_0.gguf",
  MODEL_ID: "edgelm-tiny",
  QUEUE_DEPTH: "4",
  LOAD_WAIT_MS: "60000",
  // The tiny model is far faster than the 1.6B figures the estimate is set for.
  DECODE_TOKENS_PER_S: "0",
  // Miniflare can lose the disconnect; the stalled-reader fallback then frees the engine soon.
  STREAM_STALL_MS: "1000",
};

describe.runIf(BROWSER_TESTS)("playground in Chromium, Worker in workerd", () => {
  let open: WorkerUnderTest;
  let keyed: WorkerUnderTest;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    const model = await testModelPath();
    [open, keyed, browser] = await Promise.all([
      startWorker({ vars: VARS, r2Model: model }),
      startWorker({ vars: { ...VARS, API_KEYS: JSON.stringify({ [KEY]: "free" }) }, r2Model: model }),
      launchChromium(),
    ]);
    await Promise.all([waitHealthy(open), waitHealthy(keyed)]);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all([open?.close(), keyed?.close()]);
  });

  /** textContent of #output after each DOM change, in order. */
  let snapshots: string[];

  beforeEach(async () => {
    snapshots = [];
    page = await browser.newPage();
    await page.exposeFunction("recordOutput", (text: string) => void snapshots.push(text));
    // Installed before the page's own script runs, so no change escapes it.
    await page.addInitScript(() => {
      addEventListener("DOMContentLoaded", () => {
        const record = (globalThis as any).recordOutput as (t: string) => void;
        new MutationObserver(() => {
          const out = document.getElementById("output");
          if (out?.textContent) record(out.textContent);
        }).observe(document.getElementById("transcript")!, { subtree: true, childList: true, characterData: true });
      });
    });
  });

  afterEach(async (ctx) => {
    await screenshotOnFailure(page, `playground-${ctx.task.name}`, ctx.task.result?.state === "fail");
    await page?.close();
  });

  async function setField(id: string, value: string): Promise<void> {
    await page.fill(`#${id}`, value);
  }

  it("streams a completion into the page token by token, with the route and time to first token", async () => {
    await page.goto(`${open.url}/`);
    await setField("prompt", "Once upon a time");
    await setField("max-tokens", "24");
    await setField("seed", "7");
    await page.click("#run");
    await page.waitForSelector("#status:text-matches('^done')");
    const final = await page.textContent("#output");
    expect(final!.length).toBeGreaterThan(0);
    // Several DOM updates, each one a longer prefix of the answer: it grew as tokens arrived.
    const distinct = snapshots.filter((s, i) => s !== snapshots[i - 1]);
    expect(distinct.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < distinct.length; i++) expect(distinct[i].startsWith(distinct[i - 1]) && distinct[i].length > distinct[i - 1].length).toBe(true);
    expect(distinct.at(-1)).toBe(final);
    expect(await page.textContent("#route")).toBe("edge");
    expect(await page.textContent("#ttft")).toMatch(/^\d+ ms$/);
    expect(await page.textContent("#tps")).toMatch(/^\d+(\.\d)?$/);
    expect(await page.textContent("#tokens")).toBe("24");
    expect(await page.locator("#backend option").first().textContent()).toBe("edge API");
  });

  it("Stop aborts the stream and the Worker frees its engine", async () => {
    await page.goto(`${open.url}/`);
    // Far more tokens than the test waits for: only the abort can end it early.
    await setField("max-tokens", "2000");
    await page.click("#run");
    await page.waitForFunction(() => (document.getElementById("output")?.textContent ?? "").length > 0);
    await page.click("#stop");
    await page.waitForSelector("#status:text-is('stopped')");
    expect(await page.isDisabled("#stop")).toBe(true);
    await vi.waitFor(
      async () => {
        const h = await (await fetch(`${open.url}/health`)).json();
        expect(h.queue).toMatchObject({ running: false, waiting: 0 });
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(requestLines(open.logs()).some((l) => l.outcome === "aborted" && l.prefilled_tokens === l.prompt_tokens)).toBe(true);
  });

  it("chat mode: the reply streams in, and the next turn sends the history", async () => {
    await page.goto(`${open.url}/`);
    await page.selectOption("#mode", "chat");
    await setField("max-tokens", "8");
    const bodies: any[] = [];
    page.on("request", (r) => {
      if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON());
    });
    await setField("prompt", "Hello there");
    await page.click("#run");
    await page.waitForSelector("#status:text-matches('^done')");
    await setField("prompt", "And then?");
    await page.click("#run");
    await page.waitForSelector("#status:text-matches('^done')", { state: "attached" });
    await vi.waitFor(() => expect(bodies.length).toBe(2));
    await page.waitForFunction(() => document.querySelectorAll("#transcript .turn").length === 4 && !(document.getElementById("run") as HTMLButtonElement).disabled);
    expect(bodies[0].messages).toEqual([{ role: "user", content: "Hello there" }]);
    expect(bodies[1].messages.map((m: any) => m.role)).toEqual(["user", "assistant", "user"]);
    expect(bodies[1].messages[2].content).toBe("And then?");
    const roles = await page.$$eval("#transcript .turn", (els) => els.map((e) => (e as HTMLElement).dataset.role));
    expect(roles).toEqual(["user", "assistant", "user", "assistant"]);
    expect((await page.textContent("#output"))!.length).toBeGreaterThan(0);
    expect(await page.textContent("#route")).toBe("edge");
  });

  it("with API keys: the page is open, asks for a key on 401, keeps it for the tab and then works", async () => {
    const res = await fetch(`${keyed.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    await page.goto(`${keyed.url}/`);
    await setField("max-tokens", "6");
    await page.click("#run");
    await page.waitForSelector("#key-dialog[open]");
    await page.fill("#api-key", KEY);
    await page.click("#key-save");
    await page.waitForSelector("#status:text-matches('^done')");
    expect((await page.textContent("#output"))!.length).toBeGreaterThan(0);
    expect(await page.evaluate(() => sessionStorage.getItem("edgelm.apiKey"))).toBe(KEY);
  });
});
