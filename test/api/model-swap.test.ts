/**
 * Replacing the model of a running `edgelm serve` (RunningServer.reload, SIGHUP in the CLI): a
 * stream that started on the old weights finishes on them, token for token, while requests made
 * after the swap get the new weights; the old engine is closed once its stream ends; with too
 * little memory for both, the server drains before it loads.
 */
import { copyFileSync, mkdtempSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { InFlight, swapModel } from "../../src/node/model-swap";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "./helpers";

let server: RunningServer;
let path: string;
let modelA: string;
let modelB: string;
const logs: string[] = [];

const body = (extra: Record<string, unknown> = {}) => JSON.stringify({ prompt: "Once upon a time", max_tokens: 24, temperature: 0, ...extra });
const post = (b: string) => fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: b });
const textOf = async (res: Response) => ((await res.json()) as { choices: { text: string }[] }).choices[0].text;

/** The answer each file gives alone, from a server of its own. */
async function alone(file: string): Promise<string> {
  const s = await startServer({ modelPath: file, port: 0, engine: "wasm", threads: 1, log: () => {} });
  await s.ready;
  const res = await fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: body() });
  const text = await textOf(res);
  await s.close();
  return text;
}

beforeAll(async () => {
  modelA = await synthGGUF("tiny", "q4_0", 0);
  modelB = await synthGGUF("tiny", "q4_0", 1);
  path = join(mkdtempSync(join(tmpdir(), "edgelm-swap-")), "model.gguf");
  copyFileSync(modelA, path);
  server = await startServer({ modelPath: path, port: 0, engine: "wasm", threads: 1, modelId: "m", log: (l) => logs.push(l) });
  await server.ready;
}, 120_000);

afterAll(async () => {
  await server?.close();
});

describe("edgelm serve: replacing the model while it serves", () => {
  it("a running stream ends on the old weights; requests after the swap get the new ones; the old engine closes after", async () => {
    const [wantA, wantB] = [await alone(modelA), await alone(modelB)];
    expect(wantA).not.toBe(wantB);
    const old = await server.ready;
    const close = vi.spyOn(old.engine, "close");

    // A long stream on the old weights: read its first event, then swap underneath it while it runs.
    const res = await post(body({ stream: true, max_tokens: 200 }));
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let raw = new TextDecoder().decode((await reader.read()).value);
    expect(server.queue.running).toBe(true);
    const tmp = `${path}.new`;
    copyFileSync(modelB, tmp);
    renameSync(tmp, path);
    await new Promise<void>((resolve, reject) => {
      // The swap finishes only after the stream's generation does, so watch for "serves new requests".
      void server.reload().catch(reject);
      const wait = setInterval(() => {
        if (logs.some((l) => /serves new requests/.test(l))) {
          clearInterval(wait);
          resolve();
        }
      }, 10);
    });
    expect(await textOf(await post(body()))).toBe(wantB);

    for (let r = await reader.read(); !r.done; r = await reader.read()) raw += new TextDecoder().decode(r.value);
    const streamed = parseSSE(raw).events.map((e) => e.choices?.[0]?.text ?? "").join("");
    // The old weights' greedy answer, continued past the 24 tokens compared alone.
    expect(streamed.startsWith(wantA)).toBe(true);
    expect(parseSSE(raw).done).toBe(true);
    await vi.waitFor(() => expect(close).toHaveBeenCalled(), { timeout: 10_000 });
    // The swap put the new model in first and closed the old engine only after its stream ended.
    expect(logs.join("\n")).toMatch(/serves new requests[\s\S]*old model's generations ended/);
  });

  it("without memory for both, it drains first: the old engine closes before the new one loads", async () => {
    const order: string[] = [];
    const oldModel = { engine: { close: async () => void order.push("close old") } } as any;
    const newModel = { id: "new", engine: {} } as any;
    const inflight = new InFlight();
    let finish!: () => void;
    inflight.add(oldModel, new Promise<void>((r) => (finish = r)));
    const swap = swapModel(
      {
        current: () => oldModel,
        load: async () => (order.push("load new"), newModel),
        install: () => void order.push("install new"),
        pause: () => void order.push("pause"),
        log: () => {},
      },
      path,
      inflight,
      { fits: false, needBytes: 2, freeBytes: 1 },
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(["pause"]); // still draining: the running generation holds the old model
    finish();
    expect(await swap).toBe(newModel);
    expect(order).toEqual(["pause", "close old", "load new", "install new"]);
  });
});
