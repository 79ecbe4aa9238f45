/**
 * `edgelm serve` with a multi-threaded wasm engine, over HTTP: answers equal
 * a one-thread server's; when a thread fails, that request gets a clean 500
 * naming it, the server keeps serving on one thread with the same answers,
 * and /health says so; close() stops the threads.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WasmEngine } from "../../src/engine/index";
import { StepScheduler } from "../../src/api/step-scheduler";
import type { Engine } from "../../src/model/engine";

/** The served engine is the batching scheduler over the wasm engine. */
const wasmOf = (e: Engine) => (e instanceof StepScheduler ? e.engine : e) as WasmEngine;
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";

let one: RunningServer;
let three: RunningServer;

beforeAll(async () => {
  const modelPath = await synthGGUF("tiny", "q4_0");
  [one, three] = await Promise.all([1, 3].map((threads) => startServer({ modelPath, port: 0, modelId: "tiny", threads, log: () => {} })));
  await Promise.all([one.ready, three.ready]);
});
afterAll(() => Promise.all([one?.close(), three?.close()]));

const complete = (server: RunningServer, stream = false) =>
  fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 8, temperature: 0, stream }),
  });
const text = async (server: RunningServer) => {
  const res = await complete(server);
  expect(res.status).toBe(200);
  return (await res.json()).choices[0].text as string;
};
const health = async (server: RunningServer) => (await (await fetch(`${server.url}/health`)).json()) as { engine: string };

describe("serve with threads", { timeout: 60_000 }, () => {
  it("answers as one thread does; a failing thread fails one request cleanly and the server goes on with one thread", async () => {
    const want = await text(one);
    expect(await text(three)).toBe(want);
    expect((await health(three)).engine).toMatch(/; 3 threads\); batches of up to 4 sequences, 64 rows$/);

    const engine = wasmOf((await three.ready).engine);
    engine.threadPool!.failNext(2);
    const failed = await complete(three);
    expect(failed.status).toBe(500);
    expect((await failed.json()).error).toMatchObject({
      type: "server_error",
      message: "internal error: engine thread 2 failed: Error: failing on purpose (test hook); the engine continues on one thread",
    });

    expect(await text(three)).toBe(want);
    expect(engine.threads).toBe(1);
    expect((await health(three)).engine).toMatch(/; 1 thread \(engine thread 2 failed: .*\)\); batches/);
  });

  it("a failure during a stream ends it with an error event and no [DONE]; the next stream is whole", async () => {
    const server = await startServer({ modelPath: await synthGGUF("tiny", "q4_0"), port: 0, modelId: "tiny", threads: 2, log: () => {} });
    try {
      const engine = wasmOf((await server.ready).engine);
      const want = await (await complete(server, true)).text();
      expect(want).toMatch(/data: \[DONE\]\s*$/);
      engine.threadPool!.failNext(1);
      const broken = await (await complete(server, true)).text();
      expect(broken).toMatch(/"error":\{"message":"internal error: engine thread 1 failed/);
      expect(broken).not.toMatch(/\[DONE\]/);
      const again = await (await complete(server, true)).text();
      const content = (sse: string) => [...sse.matchAll(/"text":"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]).join("");
      expect(content(again)).toBe(content(want));
    } finally {
      await server.close();
    }
  });

  it("close() stops the engine's threads", async () => {
    const server = await startServer({ modelPath: await synthGGUF("tiny", "q4_0"), port: 0, modelId: "tiny", threads: 2, log: () => {} });
    const engine = wasmOf((await server.ready).engine);
    const pool = engine.threadPool!;
    expect(pool.usable).toBe(true);
    await server.close();
    expect(pool.usable).toBe(false);
    expect(engine.threads).toBe(1);
  });
});
