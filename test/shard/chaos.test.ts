/**
 * Faults in the sharded deployment (workerd): a shard slow to load, a shard whose first load
 * fails, a shard reset mid-stream, and a shard that never loads. Every request either completes
 * with the single-isolate Worker's tokens (the coordinator re-runs the prefix on a shard that lost
 * it) or ends cleanly with an error (a 5xx, or an error event and no [DONE] once streaming);
 * none runs past BOUND_MS, and the coordinator keeps answering.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, waitHealthy, type WorkerUnderTest } from "../worker/harness";
import { startSharded, type ShardedUnderTest } from "./harness";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "../worker/v8-flags";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "../api/helpers";

const KEY = "models/tiny-q4_0.gguf";
const VARS = { MODEL_ID: "edgelm-tiny", QUEUE_DEPTH: "4", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: "8" };
const BUDGET_MB = 19;
const CONTEXT = 128;
/** No request, whatever its fault, may take longer than this: a hang fails the test. */
const BOUND_MS = 60_000;

useWorkerdV8Flags(localWorkerdV8Flags());

interface Outcome {
  status: number;
  text: string;
  done: boolean;
  error?: string;
}

async function run(url: string, body: Record<string, unknown>): Promise<Outcome> {
  const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "edgelm-tiny", ...body }), signal: AbortSignal.timeout(BOUND_MS) });
  const raw = await res.text();
  if (!body.stream) {
    const json = JSON.parse(raw);
    return { status: res.status, text: json.choices?.[0]?.text ?? "", done: res.ok, error: json.error?.message };
  }
  const parsed = parseSSE(raw);
  const error = parsed.events.find((e) => e.error)?.error?.message;
  return { status: res.status, text: parsed.events.map((e) => e.choices?.[0]?.text ?? "").join(""), done: parsed.done, error };
}

const BODY = { prompt: "Once upon a time", max_tokens: 12, temperature: 0.8, seed: 5, stream: true };

let single: WorkerUnderTest;
let flaky: ShardedUnderTest;
let broken: ShardedUnderTest;

beforeAll(async () => {
  const model = await synthGGUF("tiny", "q4_0");
  [single, flaky, broken] = await Promise.all([
    startWorker({ vars: { ...VARS, MODEL_KEY: KEY, ENGINE: "wasm" }, r2Model: model }),
    // Shard 0 (layers) is slow to load and is reset at its 5th frame; shard 1 (a head slice) fails its first load.
    startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, shardVars: { 0: { TEST_LOAD_DELAY_MS: "1500", TEST_CRASH_AFTER_FRAMES: "5" }, 1: { TEST_LOAD_FAILURES: "1" } } }),
    startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, shardVars: { 1: { TEST_LOAD_FAILURES: "always" } } }),
  ]);
  await Promise.all([single, flaky, broken].map((w) => waitHealthy({ url: w.url })));
}, 180_000);

afterAll(async () => {
  await Promise.all([single?.close(), flaky?.close(), broken?.close()]);
});

describe("chaos in the sharded deployment", () => {
  it("a slow shard reset mid-stream and a shard whose first load fails: the stream completes with the same tokens", async () => {
    const want = await run(single.url, BODY);
    const got = await run(flaky.url, BODY);
    expect(got).toMatchObject({ status: 200, done: true, text: want.text });
    const logs = flaky.logs();
    // Shard 1's failed load was tried again; shard 0 was reset at its 5th frame, loaded again and the prefix re-run.
    expect(logs).toMatch(/edgelm shard 1: load failed: load 1 failed \(TEST_LOAD_FAILURES=1\)[\s\S]*edgelm shard 1 \(edgelm-shard-1\): loaded in/);
    expect(logs.match(/edgelm shard 0 \(edgelm-shard-0\): loaded in/g)).toHaveLength(2);
    const h = (await (await fetch(`${flaky.url}/health`)).json()) as any;
    expect(h.sharding.prefix_reruns).toBe(1);
    // And the deployment serves on.
    expect(await run(flaky.url, { ...BODY, seed: 9 })).toMatchObject({ status: 200, done: true, text: (await run(single.url, { ...BODY, seed: 9 })).text });
  });

  it("a shard that never loads: every request ends cleanly, streamed or not, and the coordinator keeps answering", async () => {
    const streamed = await run(broken.url, BODY);
    expect(streamed.done).toBe(false);
    expect(`${streamed.error}`).toMatch(/shard 1 failed to load/);
    const whole = await run(broken.url, { ...BODY, stream: false });
    expect(whole.status).toBeGreaterThanOrEqual(500);
    expect(`${whole.error}`).toMatch(/shard 1 failed to load/);
    expect((await fetch(`${broken.url}/health`, { signal: AbortSignal.timeout(5000) })).status).toBe(200);
  });
});
