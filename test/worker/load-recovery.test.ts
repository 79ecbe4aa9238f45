/**
 * A failed load recovers by itself, in workerd: a missing object is retried with a doubling pause
 * (requests meanwhile get 503 + retry-after, and /health says why and when), and the upload is
 * picked up by the first request after the pause; a file found invalid is not read again until
 * the object is replaced. Small LOAD_RETRY_MS values keep this fast; nothing here is timed.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { putFile, startWorker, testModelPath, type WorkerUnderTest } from "./harness";

let w: WorkerUnderTest | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

const health = async (x: WorkerUnderTest) => {
  const res = await fetch(`${x.url}/health`);
  return { res, body: (await res.json()) as any };
};
const complete = (x: WorkerUnderTest) => fetch(`${x.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "hi", max_tokens: 2 }) });
const failures = (x: WorkerUnderTest) => x.logs().match(/loading \S+ failed \(attempt \d+; [^)]*\)/g) ?? [];

/** /health once it reports a failed load with at least `attempts` attempts (each poll is a request that may start one). */
function failedHealth(x: WorkerUnderTest, attempts = 1) {
  return vi.waitFor(
    async () => {
      const h = await health(x);
      expect(h.body.status).toBe("failed");
      expect(h.body.attempts).toBeGreaterThanOrEqual(attempts);
      return h;
    },
    { timeout: 20_000, interval: 50 },
  );
}

function healthy(x: WorkerUnderTest) {
  return vi.waitFor(
    async () => {
      const h = await health(x);
      expect(h.res.status, JSON.stringify(h.body)).toBe(200);
    },
    { timeout: 30_000, interval: 50 },
  );
}

describe("Worker: a load that could not read its object is retried with backoff", () => {
  it("missing → 503 with retry-after and /health's next attempt; the upload is loaded by a request after the pause", async () => {
    w = await startWorker({ vars: { MODEL_KEY: "late.gguf", MODEL_ID: "late", LOAD_RETRY_MS: "200", LOAD_RETRY_MAX_MS: "400" } });
    const first = await failedHealth(w);
    expect(first.res.status).toBe(503);
    expect(first.body).toMatchObject({ retry: "backoff", reason: expect.stringMatching(/"late\.gguf" is not in the R2 bucket bound as MODELS; upload it with/) });
    expect(new Date(first.body.next_attempt_at).toISOString()).toBe(first.body.next_attempt_at);
    expect(Number.isInteger(first.body.next_attempt_in_s)).toBe(true);
    expect(Number(first.res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);

    const res = await complete(w);
    expect(res.status).toBe(503);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await res.json()).error).toMatchObject({ type: "service_unavailable_error", code: "model_unavailable", message: expect.stringMatching(/not in the R2 bucket.*; the next attempt is in about \d+ s/) });

    // Requests keep coming, so the attempts go on, each pause twice the last up to the cap.
    await failedHealth(w, 3);
    expect(failures(w).slice(0, 3)).toEqual([
      "loading late.gguf failed (attempt 1; next attempt in 0.2 s)",
      "loading late.gguf failed (attempt 2; next attempt in 0.4 s)",
      "loading late.gguf failed (attempt 3; next attempt in 0.4 s)",
    ]);

    await putFile(await w.mf.getR2Bucket("MODELS"), "late.gguf", await testModelPath());
    await healthy(w);
    const ok = await complete(w);
    expect(ok.status).toBe(200);
    expect((await ok.json()).usage.completion_tokens).toBe(2);
  }, 60_000);
});

describe("Worker: a file found invalid waits for a new upload", () => {
  it("is not read again until the object is replaced, then loads", async () => {
    w = await startWorker({ vars: { MODEL_KEY: "bad.gguf", MODEL_ID: "bad", LOAD_RETRY_MS: "50" } });
    const bucket = await w.mf.getR2Bucket("MODELS");
    await bucket.put("bad.gguf", new TextEncoder().encode("this is not a GGUF file at all, just text. ".repeat(50)).buffer as ArrayBuffer);

    const first = await failedHealth(w);
    expect(first.body).toMatchObject({ retry: "object_change", attempts: 1, next_attempt_at: null, reason: expect.stringMatching(/GGUF/) });
    const res = await complete(w);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect((await res.json()).error.message).toMatch(/loaded again once the file is replaced/);

    // Many times the pause, with requests all along: still the one attempt.
    for (let i = 0; i < 10; i++) {
      await health(w);
      await new Promise((r) => setTimeout(r, 60));
    }
    expect((await health(w)).body).toMatchObject({ status: "failed", retry: "object_change", attempts: 1 });
    expect(failures(w)).toEqual(["loading bad.gguf failed (attempt 1; the file is invalid: not retried until the object changes)"]);

    await putFile(bucket, "bad.gguf", await testModelPath());
    await healthy(w);
    expect(w.logs()).toMatch(/bad\.gguf was replaced since it was found invalid: loading it again/);
    expect(failures(w)).toHaveLength(1);
    expect((await complete(w)).status).toBe(200);
  }, 60_000);
});

describe("Worker: a transfer cut short is the source's fault, not the file's", () => {
  it("a body that ends before its content-length is retried with backoff", async () => {
    // Reached through a Node service: its response claims the whole file but sends half of it.
    const bytes = readFileSync(await testModelPath());
    let served = 0;
    w = await startWorker({
      vars: { MODEL_KEY: "cut.gguf", MODEL_ID: "cut", LOAD_RETRY_MS: "100" },
      serviceBindings: {
        MODEL_FILES: async (req: Request) => {
          const { Response } = await import("miniflare");
          // A folder with the model alone: no manifest beside it.
          if (!new URL(req.url).pathname.endsWith("/cut.gguf")) return new Response(null, { status: 404 });
          served++;
          const whole = served > 1;
          const body = new ReadableStream<Uint8Array>({
            start(c) {
              c.enqueue(new Uint8Array(bytes.subarray(0, whole ? bytes.length : bytes.length >> 1)));
              c.close();
            },
          });
          return new Response(body as any, { headers: { "content-length": String(bytes.length) } });
        },
      },
    });
    const first = await failedHealth(w);
    // workerd reports the short body as a failed read; a source that just ends early is caught by the size.
    expect(first.body).toMatchObject({ retry: "backoff", reason: expect.stringMatching(/reading the stream failed at offset \d+|truncated stream: ended at offset \d+ of the \d+ bytes announced/) });
    await healthy(w);
  }, 60_000);
});
