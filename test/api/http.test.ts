/** The Node server over real HTTP: SSE as a client sees it, disconnects, limits. */
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE, sseEvents } from "./helpers";

let server: RunningServer;
const lines: string[] = [];
/** The server's per-request JSON lines (src/api/request-line.ts) so far. */
const requestLines = () => lines.filter((l) => l.startsWith('{"request_id"')).map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  const path = await synthGGUF("tiny", "f32");
  // The reference engine: slow enough that a 4000-token generation only ends when it is aborted.
  server = await startServer({ modelPath: path, port: 0, modelId: "tiny", engine: "ref", log: (l) => lines.push(l) });
  await server.ready;
});
afterAll(() => server?.close());

const completions = (body: unknown, init: { signal?: AbortSignal; headers?: Record<string, string> } = {}) =>
  fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", ...init.headers }, body: JSON.stringify(body), signal: init.signal });

describe("edgelm serve over HTTP", { timeout: 30_000 }, () => {
  it("binds to 127.0.0.1 by default on the chosen port", () => {
    expect(server.host).toBe("127.0.0.1");
    expect(server.port).toBeGreaterThan(0);
  });

  it("streams a completion as SSE with a final finish_reason, usage and [DONE]", async () => {
    const res = await completions({ prompt: "Hello", max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { events, done, raw } = parseSSE(await res.text());
    expect(raw.startsWith("data: {")).toBe(true);
    expect(done).toBe(true);
    const textChunks = events.filter((e) => e.choices.length === 1 && e.choices[0].finish_reason === null);
    expect(textChunks.length).toBeGreaterThan(1);
    expect(events.at(-2).choices[0].finish_reason).toBe("length");
    expect(events.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 6 } });
  });

  it("is reproducible for a seed (non-streamed = streamed text)", async () => {
    const body = { prompt: "Once upon a time", max_tokens: 5, seed: 1234, temperature: 1 };
    const a = await (await completions(body)).json();
    const b = await (await completions(body)).json();
    expect(a.choices[0].text).toBe(b.choices[0].text);
    const s = parseSSE(await (await completions({ ...body, stream: true })).text());
    expect(s.events.map((e) => e.choices[0]?.text ?? "").join("")).toBe(a.choices[0].text);
  });

  it("never lets a stop string into the output, streamed or not", async () => {
    const free = await (await completions({ prompt: "Hello", max_tokens: 12, temperature: 0 })).json();
    const text: string = free.choices[0].text;
    const stop = text.slice(6, 10);
    for (const stream of [false, true]) {
      const res = await completions({ prompt: "Hello", max_tokens: 12, temperature: 0, stop: [stop, "zzzz-never"], stream });
      const out = stream ? parseSSE(await res.text()).events.map((e) => e.choices[0].text).join("") : (await res.json()).choices[0].text;
      expect(out).toBe(text.slice(0, text.indexOf(stop)));
      expect(out).not.toContain(stop);
    }
  });

  it("a client disconnect mid-stream stops the generation and frees the queue", async () => {
    const ac = new AbortController();
    // Thousands of tokens: only an abort ends this in reasonable time.
    const res = await completions({ prompt: "x", max_tokens: 4000, temperature: 0, stream: true }, { signal: ac.signal });
    const events = sseEvents(res.body!);
    const first = await events.next();
    expect(first.value.choices[0].finish_reason).toBeNull();
    expect(server.queue.running).toBe(true);
    ac.abort();
    await events.return(undefined).catch(() => {});
    // Unaborted, the 4000 tokens would hold the engine for a minute or more; aborted, it is freed at the next token.
    await vi.waitFor(() => expect(server.queue.running).toBe(false), { timeout: 10_000, interval: 20 });
    // The next request gets the engine; its answer proves the slot was released.
    const next = await (await completions({ prompt: "y", max_tokens: 2, temperature: 0 })).json();
    expect(next.usage.completion_tokens).toBe(2);
    expect(server.queue.running).toBe(false);
    await vi.waitFor(() => expect(requestLines().some((l) => l.path === "/v1/completions" && l.status === 200 && l.outcome === "aborted" && l.client_disconnected === true)).toBe(true));
  });

  it("a client disconnect during a non-streamed generation stops it too", async () => {
    const ac = new AbortController();
    const pending = completions({ prompt: "x", max_tokens: 4000, temperature: 0 }, { signal: ac.signal }).catch((e: Error) => e);
    await vi.waitFor(() => expect(server.queue.running).toBe(true), { timeout: 10_000, interval: 10 });
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    await vi.waitFor(() => expect(server.queue.running).toBe(false), { timeout: 10_000, interval: 20 });
  });

  it("answers /health, /v1/models, CORS preflight and 404 as JSON", async () => {
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", model: "tiny", engine: "ref", synthetic: true });
    expect((await (await fetch(`${server.url}/v1/models`)).json()).data[0].id).toBe("tiny");
    const pre = await fetch(`${server.url}/v1/chat/completions`, { method: "OPTIONS", headers: { origin: "http://localhost:3000", "access-control-request-method": "POST" } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    const nf = await fetch(`${server.url}/nope`);
    expect(nf.status).toBe(404);
    expect((await nf.json()).error.type).toBe("not_found_error");
  });

  it("survives malformed JSON and refuses a huge body with 413", async () => {
    const bad = await fetch(`${server.url}/v1/completions`, { method: "POST", body: "{oops" });
    expect(bad.status).toBe(400);
    const huge = await fetch(`${server.url}/v1/completions`, { method: "POST", body: JSON.stringify({ prompt: "a".repeat(2 << 20) }) });
    expect(huge.status).toBe(413);
    expect((await huge.json()).error.code).toBe("request_too_large");
    // A chunked upload with no Content-Length, over the cap, is cut off too.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${server.url}/v1/completions`, { method: "POST", headers: { "transfer-encoding": "chunked" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      const chunk = "b".repeat(64 << 10);
      let sent = 0;
      const pump = () => {
        while (sent < 32 && req.write(chunk)) sent++;
        if (sent < 32) req.once("drain", pump);
        else req.end();
      };
      pump();
    });
    expect(status).toBe(413);
    // Still serving.
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it("logs one JSON line per request: its id (sent back as x-request-id), outcome, tokens and timings", async () => {
    const res = await completions({ prompt: "x", max_tokens: 3, temperature: 0, stream: true }, { headers: { "x-request-id": "serve-line-1" } });
    expect(res.headers.get("x-request-id")).toBe("serve-line-1");
    await res.text();
    await vi.waitFor(() => expect(requestLines().find((l) => l.request_id === "serve-line-1")).toBeDefined());
    const line = requestLines().find((l) => l.request_id === "serve-line-1")!;
    expect(line).toMatchObject({ method: "POST", path: "/v1/completions", status: 200, outcome: "done", prompt_tokens: 1, prefilled_tokens: 1, completion_tokens: 3 });
    expect(line.first_token_ms).toBeGreaterThanOrEqual(0);
    expect(line.total_ms).toBeGreaterThanOrEqual(line.first_token_ms as number);
    expect(requestLines().filter((l) => l.path === "/health" && l.status === 200).length).toBeGreaterThanOrEqual(1);
    // Exactly one line per request.
    const ids = requestLines().map((l) => l.request_id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
