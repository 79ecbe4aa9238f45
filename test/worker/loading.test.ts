/**
 * Loading in workerd, step by step: the weights come from a folder-style service binding
 * (MODEL_FILES) whose bytes this test releases by hand, so "while loading" is a state the test
 * holds, not a race. Then the failure modes: a missing object, an engine that isn't built in.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Response as MfResponse } from "miniflare";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { cpuHasAvxVnni, startWorker, testModelPath, type WorkerUnderTest } from "./harness";

let w: WorkerUnderTest;
let bytes: Uint8Array;
let files: Server;
/** The open response of the model file: the test writes its bytes when it wants them read. */
let feed: ServerResponse | undefined;
let opened = 0;

beforeAll(async () => {
  bytes = new Uint8Array(readFileSync(await testModelPath()));
  // A plain HTTP file server bound as an external service: workerd streams from it directly
  // (a Node-function binding goes through Miniflare's proxy, which buffers the whole body).
  files = createServer((req, res) => {
    if (req.url !== "/tiny.gguf") return void res.writeHead(404).end("not found");
    opened++;
    res.writeHead(200, { "content-length": String(bytes.length), "content-type": "application/octet-stream" });
    feed = res;
  });
  await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
  const port = (files.address() as AddressInfo).port;
  w = await startWorker({
    vars: { MODEL_KEY: "tiny.gguf", MODEL_ID: "tiny", LOAD_WAIT_MS: "1500" },
    serviceBindings: { MODEL_FILES: { external: { address: `127.0.0.1:${port}`, http: {} } } },
  });
}, 60_000);

afterAll(async () => {
  await w?.close();
  files?.closeAllConnections();
  await new Promise((r) => files?.close(r));
});

const get = (path: string) => fetch(`${w.url}${path}`);
const complete = () => fetch(`${w.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: "hi", max_tokens: 2 }) });

describe("Worker: while the weights load", () => {
  it("/health is 503 with the reason and progress; a completion waits LOAD_WAIT_MS, then 503 with retry-after", async () => {
    const first = await get("/health");
    expect(first.status).toBe(503);
    expect(first.headers.get("retry-after")).toBe("2");
    await vi.waitFor(() => expect(feed).toBeDefined(), { timeout: 10_000 });

    // Three quarters of the file: the header (a third: the vocabulary) and the first big tensor are in, the last is not.
    const part = Math.floor(bytes.length * 0.75);
    feed!.write(bytes.slice(0, part));
    const mid = await vi.waitFor(
      async () => {
        const b = (await (await get("/health")).json()) as any;
        expect(b.progress).toBeGreaterThan(0.2);
        return b;
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(mid).toMatchObject({ status: "loading", reason: expect.stringMatching(/reading the weights: .* MB of .* MB/) });
    expect(mid.progress).toBeLessThan(0.9);

    const res = await complete();
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("2");
    expect((await res.json()).error).toMatchObject({ code: "model_loading", message: expect.stringMatching(/still loading/) });
    expect(w.logs()).toMatch(/loading tiny\.gguf: [1-9]\d% /);
  });

  it("a completion that arrives during the load is served once the load finishes within the wait", async () => {
    const pending = complete();
    // The request is waiting (not answered) while the rest of the bytes arrive.
    feed!.end(bytes.slice(Math.floor(bytes.length * 0.75)));
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await res.json()).usage.completion_tokens).toBe(2);
    expect(((await (await get("/health")).json()) as any).status).toBe("ok");
    expect(opened).toBe(1); // once per isolate
  });
});

describe("Worker: load failures are reported, not crashed on", () => {
  async function failedHealth(x: WorkerUnderTest): Promise<any> {
    return vi.waitFor(
      async () => {
        const r = await fetch(`${x.url}/health`);
        const j = (await r.json()) as any;
        expect(r.status).toBe(503);
        expect(j.status).toBe("failed");
        return j;
      },
      { timeout: 10_000, interval: 50 },
    );
  }

  it("a missing R2 object → /health 503 failed with the upload command; completions 503", async () => {
    const x = await startWorker({ vars: { MODEL_KEY: "nope.gguf" } });
    try {
      expect((await failedHealth(x)).reason).toMatch(/"nope\.gguf" is not in the R2 bucket bound as MODELS; upload it with: wrangler r2 object put/);
      const res = await fetch(`${x.url}/v1/completions`, { method: "POST", body: '{"prompt":"a"}' });
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe("model_unavailable");
    } finally {
      await x.close();
    }
  });

  it("both engines load from R2 and serve (wasm: the kernel build is named); a bad var → 500 naming it", async () => {
    // workerd takes the first build in preference order that passes its self-test, without timing:
    // relaxed-fused where the CPU has AVX-VNNI, else relaxed (kernel-choice.test.ts forces the second).
    const cases: { vars: Record<string, string>; engine: RegExp }[] = [
      {
        vars: { ENGINE: "wasm" },
        engine: cpuHasAvxVnni()
          ? /^wasm \(relaxed-fused kernels: relaxed-fused build, self-test passed \(.* on first calls and after warm-up\)/
          : /^wasm \(relaxed kernels: relaxed build, self-test passed \(.* on first calls and after warm-up\)/,
      },
      { vars: { ENGINE: "wasm", KERNELS: "relaxed" }, engine: /^wasm \(relaxed kernels: relaxed build \(forced: relaxed\), self-test passed/ },
      { vars: { ENGINE: "ref" }, engine: /^ref$/ },
    ];
    for (const c of cases) {
      const x = await startWorker({ vars: { MODEL_KEY: "tiny.gguf", ...c.vars }, r2Model: await testModelPath() });
      try {
        const res = await fetch(`${x.url}/v1/completions`, { method: "POST", body: JSON.stringify({ prompt: "Hello", max_tokens: 3, temperature: 0 }) });
        expect(res.status, JSON.stringify(c.vars)).toBe(200);
        expect(((await res.json()) as any).usage.completion_tokens).toBe(3);
        const health = (await (await fetch(`${x.url}/health`)).json()) as any;
        expect(health.engine).toMatch(c.engine);
      } finally {
        await x.close();
      }
    }
    for (const [vars, message] of [
      [{ QUEUE_DEPTH: "many" }, /var QUEUE_DEPTH must be an integer/],
      [{ KERNELS: "avx512" }, /var KERNELS must be one of auto, relaxed-fused, relaxed, simd, scalar/],
    ] as const) {
      const y = await startWorker({ vars });
      try {
        const bad = await fetch(`${y.url}/health`);
        expect(bad.status).toBe(500);
        expect((await bad.json()).error.message).toMatch(message);
      } finally {
        await y.close();
      }
    }
  });
});
