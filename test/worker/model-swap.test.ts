/**
 * Replacing the Worker's model while it serves, in workerd with the models in R2: a stream that
 * started on model A ends on A's weights, token for token, while requests made after the swap get
 * model B's; the old engine is let go only after that stream; POST /admin/reload needs ADMIN_KEY;
 * a change behind MODEL_POINTER (or a new upload of the object it names) is picked up by polling;
 * and where MEMORY_LIMIT_MB cannot hold both engines, the Worker drains (503 meanwhile) before it
 * loads; the new engine's prefix cache starts empty and is keyed by the new object's version.
 * The expected answers are greedy runs of each file alone, in `edgelm serve`.
 */
import { readFileSync } from "node:fs";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE, startWorker, waitHealthy, type WorkerUnderTest } from "./harness";

const ADMIN_KEY = "swap-admin-key-0123";
const BASE_VARS = { MODEL_ID: "tiny", ENGINE: "wasm", CPU_BUDGET_MS: "0", QUEUE_DEPTH: "4", STREAM_STALL_MS: "120000" };
const PROMPT = { prompt: "Once upon a time", temperature: 0 };

let modelA: string;
let modelB: string;
let wantA: string;
let wantB: string;
let w: WorkerUnderTest | undefined;

/** The greedy answer of a file alone, from a server of its own. */
async function alone(file: string): Promise<string> {
  const s = await startServer({ modelPath: file, port: 0, engine: "wasm", threads: 1, log: () => {} });
  await s.ready;
  const res = await fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...PROMPT, max_tokens: 24 }) });
  const text = ((await res.json()) as { choices: { text: string }[] }).choices[0].text;
  await s.close();
  return text;
}

beforeAll(async () => {
  modelA = await synthGGUF("tiny", "q4_0", 0);
  modelB = await synthGGUF("tiny", "q4_0", 1);
  [wantA, wantB] = [await alone(modelA), await alone(modelB)];
  expect(wantA).not.toBe(wantB);
}, 120_000);

afterEach(async () => {
  await w?.close();
  w = undefined;
});

const put = async (key: string, content: string | Uint8Array) => {
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  // A plain ArrayBuffer: Miniflare's proxy serialiser rejects Node Buffers.
  await (await w!.mf.getR2Bucket("MODELS")).put(key, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
};
const file = (path: string) => new Uint8Array(readFileSync(path));
const health = async () => (await (await fetch(`${w!.url}/health`)).json()) as any;
const complete = (extra: Record<string, unknown> = {}) =>
  fetch(`${w!.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...PROMPT, max_tokens: 24, ...extra }) });
const textOf = async (res: Response) => {
  expect(res.status).toBe(200);
  return ((await res.json()) as { choices: { text: string }[] }).choices[0].text;
};
const reload = (body?: unknown, key: string | null = ADMIN_KEY) =>
  fetch(`${w!.url}/admin/reload`, { method: "POST", headers: key === null ? {} : { authorization: `Bearer ${key}` }, body: body === undefined ? undefined : JSON.stringify(body) });

/**
 * A long greedy stream on whatever serves now, its first event read. Socket buffers take a whole
 * stream this size without the client reading, so it is long in time instead: 2000 tokens take
 * several times as long as loading the tiny model, and the tests check it still runs at the swap.
 */
async function longStream() {
  const res = await complete({ stream: true, max_tokens: 2000 });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let raw = decoder.decode((await reader.read()).value);
  return {
    async finish() {
      for (let r = await reader.read(); !r.done; r = await reader.read()) raw += decoder.decode(r.value);
      const sse = parseSSE(raw);
      expect(sse.data.at(-1)).toBe("[DONE]");
      return sse.data
        .filter((d) => d !== "[DONE]")
        .map((d) => JSON.parse(d).choices?.[0]?.text ?? "")
        .join("");
    },
  };
}

describe("Worker: swapping the model in place", () => {
  it("POST /admin/reload under traffic: the running stream ends on A, new requests get B, the old engine goes after the stream", async () => {
    w = await startWorker({ vars: { ...BASE_VARS, MODEL_KEY: "a.gguf", ADMIN_KEY }, r2Model: modelA });
    await put("b.gguf", file(modelB));
    await waitHealthy(w);
    expect(await textOf(await complete())).toBe(wantA);
    const before = await vi.waitFor(async () => {
      const h = await health();
      expect(h.model_version).toEqual(expect.any(String));
      return h;
    });
    expect(before).toMatchObject({ model: "tiny", model_key: "a.gguf", swap: { state: "idle", last: null, memory_limit_mb: 128 } });
    // The prefix cache's keys carry the weights' identity: the object's version.
    expect(before.kv.modelIdentity).toBe(before.model_version);

    // The key is checked before anything else: missing → 401, wrong → 403, GET → 405.
    const missing = await reload({ key: "b.gguf" }, null);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe("Bearer");
    expect((await missing.json()).error.code).toBe("missing_admin_key");
    const wrong = await reload({ key: "b.gguf" }, `${ADMIN_KEY}x`);
    expect(wrong.status).toBe(403);
    expect((await wrong.json()).error.code).toBe("invalid_admin_key");
    expect((await fetch(`${w.url}/admin/reload`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(405);
    expect((await reload({ key: "b.gguf", extra: 1 })).status).toBe(400);
    const absent = await reload({ key: "nope.gguf" });
    expect(absent.status).toBe(502);
    expect((await absent.json()).error.message).toMatch(/no object "nope\.gguf".*a\.gguf keeps serving/);

    const stream = await longStream();
    const swapped = await reload({ key: "b.gguf" });
    const result = await swapped.json();
    expect(swapped.status, JSON.stringify(result)).toBe(200);
    expect(result).toMatchObject({ status: "swapped", model: "tiny", model_key: "b.gguf", mode: "side_by_side" });

    // The stream on A still runs, and B's engine came with an empty KV cache (prefix cache included).
    const after = await health();
    expect(after.queue.running).toBe(true);
    expect(after).toMatchObject({ model_key: "b.gguf", model_version: result.model_version, kv: { used: 0, cached: 0 }, swap: { state: "idle", last: { ok: true, trigger: "admin", mode: "side_by_side" } } });
    expect(after.model_version).not.toBe(before.model_version);
    expect(after.kv.modelIdentity).toBe(after.model_version);
    expect(w.logs()).not.toMatch(/its engine is let go/);

    const next = complete(); // queues behind the stream, and chose B
    const streamed = await stream.finish();
    expect(streamed.length).toBeGreaterThan(wantA.length);
    expect(streamed.startsWith(wantA)).toBe(true);
    expect(await textOf(await next)).toBe(wantB);
    await vi.waitFor(() => expect(w!.logs()).toMatch(/now serves new requests[\s\S]*its engine is let go/), { timeout: 10_000 });
  }, 180_000);

  it("MODEL_POINTER: the first model is the one it names; a new pointer, or a new upload of the object, is picked up by polling", async () => {
    w = await startWorker({ vars: { ...BASE_VARS, MODEL_POINTER: "serving", MODEL_POINTER_POLL_S: "1" } });
    await put("a.gguf", file(modelA));
    await put("b.gguf", file(modelB));
    await put("serving", "a.gguf\n");
    await waitHealthy(w);
    expect(await textOf(await complete())).toBe(wantA);
    expect(await health()).toMatchObject({ model_key: "a.gguf", swap: { pointer: { key: "serving", poll_s: 1 } } });
    // Without ADMIN_KEY the admin route is off.
    const off = await reload({});
    expect(off.status).toBe(404);
    expect((await off.json()).error.code).toBe("admin_disabled");

    await put("serving", "b.gguf");
    const swappedTo = (key: string, version?: string) =>
      vi.waitFor(
        async () => {
          const h = await health(); // each look is a request: requests drive the polling
          expect(h.model_key).toBe(key);
          if (version) expect(h.model_version).not.toBe(version);
          return h;
        },
        { timeout: 30_000, interval: 200 },
      );
    const onB = await swappedTo("b.gguf");
    expect(onB.swap.last).toMatchObject({ ok: true, trigger: "pointer", key: "b.gguf" });
    expect(await textOf(await complete())).toBe(wantB);

    // Same key, new bytes: the object's version changed, so the pointer's target is loaded again.
    await put("b.gguf", file(modelA));
    await swappedTo("b.gguf", onB.model_version);
    expect(await textOf(await complete())).toBe(wantA);
    expect(w.logs()).toMatch(/MODEL_POINTER "serving" now names b\.gguf/);

    // A pointer that is not one key is logged and ignored: the model keeps serving.
    await put("serving", "a.gguf\nb.gguf");
    await vi.waitFor(
      async () => {
        await health();
        expect(w!.logs()).toMatch(/the pointer object "serving" must hold one model key[^\n]*b\.gguf keeps serving/);
      },
      { timeout: 30_000, interval: 200 },
    );
    expect((await health()).model_key).toBe("b.gguf");
  }, 180_000);

  it("without memory for both engines: says so, answers 503 while it drains, lets the old engine go, then loads", async () => {
    // The tiny engine takes about 13 MiB: one fits in 20, two do not.
    w = await startWorker({ vars: { ...BASE_VARS, MODEL_KEY: "a.gguf", ADMIN_KEY, MEMORY_LIMIT_MB: "20", LOAD_WAIT_MS: "0" }, r2Model: modelA });
    await put("b.gguf", file(modelB));
    await waitHealthy(w);

    const stream = await longStream();
    const swapping = reload({ key: "b.gguf" });
    await vi.waitFor(
      async () => {
        const res = await fetch(`${w!.url}/health`);
        expect(res.status).toBe(503);
        expect((await res.json()).reason).toMatch(/draining the old one before loading b\.gguf/);
      },
      { timeout: 10_000, interval: 50 },
    );
    const refused = await complete();
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(w.logs()).toMatch(/needs \d+\.\d MiB beside the serving \d+\.\d MiB, over MEMORY_LIMIT_MB \(20\.0 MiB\): draining the old model first/);
    expect(w.logs()).not.toMatch(/its engine is let go/);

    const streamed = await stream.finish();
    expect(streamed.startsWith(wantA)).toBe(true);
    const res = await swapping;
    const result = await res.json();
    expect(res.status, JSON.stringify(result)).toBe(200);
    expect(result).toMatchObject({ model_key: "b.gguf", mode: "drain_first" });
    // The old engine went before the new one loaded.
    expect(w.logs()).toMatch(/draining the old model first[\s\S]*its engine is let go[\s\S]*loading b\.gguf[\s\S]*now serves new requests/);
    expect(await textOf(await complete())).toBe(wantB);
  }, 180_000);
});
