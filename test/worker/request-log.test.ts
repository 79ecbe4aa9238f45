/**
 * The Worker's request log: one JSON line per request, written once the request is over (so a
 * streamed generation's tokens and how it ended are in it), with the tier and never the key.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startWorker, testModelPath, waitHealthy, type WorkerUnderTest } from "./harness";

const KEY = "sk-edgelm-log-test-pro-777";
let w: WorkerUnderTest;

beforeAll(async () => {
  w = await startWorker({
    vars: { MODEL_KEY: "tiny.gguf", MODEL_ID: "tiny", API_KEYS: JSON.stringify({ [KEY]: "pro" }), CPU_BUDGET_MS: "0", QUEUE_DEPTH: "0", STREAM_STALL_MS: "1000" },
    r2Model: await testModelPath(),
  });
  await waitHealthy(w);
}, 60_000);

afterAll(async () => {
  await w?.close();
});

/** Every JSON line the Worker wrote about `id`. */
const jsonLinesOf = (id: string) =>
  w
    .logs()
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes(id))
    .map((l) => JSON.parse(l));

async function lineOf(id: string): Promise<any> {
  const lines = await vi.waitFor(
    () => {
      const found = jsonLinesOf(id);
      expect(found.length).toBeGreaterThan(0);
      return found;
    },
    { timeout: 10_000, interval: 20 },
  );
  expect(lines).toHaveLength(1);
  return lines[0];
}

const post = (body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${w.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, ...headers }, body: JSON.stringify(body), signal });

describe("Worker: one JSON log line per request", () => {
  it("a streamed completion: route, tier, tokens, timings and outcome, in exactly one line", async () => {
    const res = await post({ prompt: "Hello", max_tokens: 4, stream: true, temperature: 0 }, { "x-request-id": "log-stream-1" });
    expect(res.status).toBe(200);
    await res.text();
    const line = await lineOf("log-stream-1");
    expect(line).toMatchObject({
      event: "request",
      request_id: "log-stream-1",
      method: "POST",
      path: "/v1/completions",
      status: 200,
      route: "edge",
      tier: "pro",
      completion_tokens: 4,
      outcome: "done",
      cause: null,
    });
    expect(line.prompt_tokens).toBeGreaterThan(0);
    expect(line.ttft_ms).toEqual(expect.any(Number));
    expect(line.total_ms).toBeGreaterThanOrEqual(line.ttft_ms);
  });

  it("refused requests and non-generation routes: rejected or done, route none, no tokens", async () => {
    const bad = await post({ prompt: "x" }, { "x-request-id": "log-unauth-1", authorization: "Bearer sk-wrong-log-key-999" });
    expect(bad.status).toBe(401);
    expect(await lineOf("log-unauth-1")).toMatchObject({ status: 401, route: "none", tier: "-", outcome: "rejected", prompt_tokens: null, completion_tokens: null, ttft_ms: null });

    const health = await fetch(`${w.url}/health`, { headers: { "x-request-id": "log-health-1" } });
    expect(health.status).toBe(200);
    expect(await lineOf("log-health-1")).toMatchObject({ method: "GET", path: "/health", status: 200, route: "none", outcome: "done" });
  });

  it("a client that leaves mid-stream: outcome aborted, and what ended it", async () => {
    const a = new AbortController();
    const res = await post({ prompt: "A", max_tokens: 2000, stream: true }, { "x-request-id": "log-abort-1" }, a.signal);
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    a.abort();
    const line = await lineOf("log-abort-1");
    expect(line).toMatchObject({ status: 200, route: "edge", outcome: "aborted", cause: expect.stringMatching(/^(client_disconnect|stream_cancelled|stalled_reader)$/) });
    expect(line.completion_tokens).toBeLessThan(2000);
  });

  it("no line carries the key", () => {
    const logs = w.logs();
    expect(logs).toMatch(/"tier":"pro"/);
    expect(logs).not.toContain(KEY);
    expect(logs).not.toContain("sk-wrong-log-key-999");
  });
});
