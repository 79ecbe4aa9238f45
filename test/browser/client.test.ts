/**
 * edgelm/client inside Chromium: the bundle a browser gets, against a small local server that
 * first refuses with 429 + retry-after and then streams, and one that stalls mid-stream so that
 * an abort has to cut a live connection. The page and the API share an origin (no CORS here).
 */
import { build } from "esbuild";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { BROWSER_TESTS, launchChromium, screenshotOnFailure } from "../helpers/browser";

const chunk = (text: string, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: "cmpl-1", object: "text_completion", model: "m", choices: [{ index: 0, text, finish_reason: finish }] })}\n\n`;

describe.runIf(BROWSER_TESTS)("edgelm/client in Chromium", () => {
  let server: Server;
  let base: string;
  let browser: Browser;
  let page: Page;
  let retryCalls = 0;
  /** Set when the stalled stream's connection closes: the abort reached the server. */
  let stallClosed = false;

  beforeAll(async () => {
    const bundle = await build({ entryPoints: ["src/client/index.ts"], bundle: true, format: "iife", globalName: "edgelm", platform: "browser", target: "es2022", write: false, logLevel: "silent" });
    const html = `<!doctype html><meta charset="utf-8"><title>client</title><script>${bundle.outputFiles[0].text.replace(/<\/script/gi, "<\\/script")}</script>`;
    server = createServer((req, res: ServerResponse) => {
      if (req.method === "GET" && req.url === "/") return void res.writeHead(200, { "content-type": "text/html" }).end(html);
      if (req.url === "/retry/v1/completions") {
        retryCalls++;
        if (retryCalls === 1) return void res.writeHead(429, { "content-type": "application/json", "retry-after": "1" }).end(JSON.stringify({ error: { message: "busy", type: "rate_limit_error", param: null, code: "queue_full" } }));
        res.writeHead(200, { "content-type": "text/event-stream", "x-edgelm-route": "edge" });
        return void res.end(chunk("Hello") + chunk(", world", "stop") + "data: [DONE]\n\n");
      }
      if (req.url === "/stall/v1/completions") {
        res.on("close", () => (stallClosed = true));
        res.writeHead(200, { "content-type": "text/event-stream" });
        // One token, then nothing: only the client's abort ends this.
        return void res.write(chunk("first"));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${base}/`);
  }, 60_000);

  afterEach(async (ctx) => {
    await screenshotOnFailure(page, `client-${ctx.task.name}`, ctx.task.result?.state === "fail");
  });

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  it("retries a 429 after the server's retry-after, then streams the answer", async () => {
    const out = await page.evaluate(async (baseURL) => {
      const retries: number[] = [];
      const client = (globalThis as any).edgelm.createClient({ baseURL, onRetry: (r: { delayMs: number }) => retries.push(r.delayMs) });
      const stream = client.complete({ prompt: "hi", max_tokens: 4 });
      const pieces: string[] = [];
      try {
        for await (const c of stream) pieces.push(c.choices[0]?.text ?? "");
      } catch (e) {
        // Returned rather than thrown: a browser-side stack would be the report instead of the diff.
        return { error: `${(e as Error).name}: ${(e as Error).message}` };
      }
      return { pieces, attempts: stream.attempts, retries, finish: stream.finishReason, route: stream.route };
    }, `${base}/retry`);
    expect(retryCalls).toBe(2);
    expect(out).toEqual({ pieces: ["Hello", ", world"], attempts: 2, retries: [1000], finish: "stop", route: "edge" });
  });

  it("an abort mid-stream ends the loop with APIUserAbortError and closes the connection", async () => {
    const out = await page.evaluate(async (baseURL) => {
      const { createClient, APIUserAbortError } = (globalThis as any).edgelm;
      const ac = new AbortController();
      const stream = createClient({ baseURL, maxRetries: 0 }).complete({ prompt: "hi" }, { signal: ac.signal });
      const pieces: string[] = [];
      try {
        for await (const c of stream) {
          pieces.push(c.choices[0].text);
          ac.abort();
        }
        return { pieces, error: "none" };
      } catch (e) {
        return { pieces, error: (e as Error).name, isAbort: e instanceof APIUserAbortError };
      }
    }, `${base}/stall`);
    expect(out).toEqual({ pieces: ["first"], error: "AbortError", isAbort: true });
    await vi.waitFor(() => expect(stallClosed).toBe(true), { timeout: 10_000 });
  });
});
