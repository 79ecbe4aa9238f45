/**
 * The sharded coordinator's batch loop survives the cancellation of the request that drives it, in
 * real workerd. The layer shard answers each run frame 200 ms late (TEST_RUN_DELAY_MS), so a step
 * spends its time awaiting I/O (the others make more looks during one than the lost-step rule
 * allows without the driver's) and a disconnect lands in one. Stream X starts alone and so drives
 * the steps (their frames go on X's sessions); B and C join X's steps; X's client then disconnects
 * mid-generation. B and C must finish with the tokens each gets when served alone (seeded), and
 * the steps after X's end must go on another request's sessions. No step is given up as lost: X's
 * request lives until the step it drives has ended.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { complete as completeOn, health, startSharded, type ShardedUnderTest } from "./harness";
import { sseEvents } from "../api/helpers";
import { waitHealthy } from "../worker/harness";
import { synthGGUF } from "../../weights-tools/fixtures";

const KEY = "models/tiny-q4_0.gguf";
const MODEL = "edgelm-tiny";

let sharded: ShardedUnderTest;

beforeAll(async () => {
  const model = await synthGGUF("tiny", "q4_0");
  sharded = await startSharded({
    model,
    key: KEY,
    budgetMb: 19,
    context: 128,
    sequences: 4,
    vars: { MODEL_ID: MODEL, QUEUE_DEPTH: "8", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", MAX_BATCH: "4" },
    shardVars: { 0: { TEST_RUN_DELAY_MS: "200" } },
  });
  await waitHealthy({ url: sharded.url });
}, 120_000);

afterAll(async () => {
  await sharded?.close();
});

const X = { prompt: "The long one", max_tokens: 60, temperature: 0.8, seed: 5, stream: true };
const OTHERS = [
  { prompt: "The edge of the network is", max_tokens: 10, temperature: 0.9, top_p: 0.95, seed: 11, stream: true },
  { prompt: "Hello", max_tokens: 9, temperature: 0, stream: true },
];

/** A streamed completion read event by event: its text so far, its token events, and its end. */
function stream(body: Record<string, unknown>, signal?: AbortSignal) {
  const s = { text: "", tokens: 0, status: 0, done: undefined as unknown as Promise<void> };
  s.done = (async () => {
    const res = await fetch(`${sharded.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, ...body }), signal });
    s.status = res.status;
    for await (const ev of sseEvents(res.body!)) {
      if (ev === "[DONE]") break;
      const t = ev.choices?.[0]?.text;
      if (typeof t === "string") {
        s.text += t;
        s.tokens++;
      }
    }
  })();
  return s;
}

const sharding = async () => {
  const body = (await health(sharded.url)).body;
  return { ...body.sharding, lost: body.batch.lost };
};

describe("the sharded coordinator's steps when their driving request is cancelled (workerd)", () => {
  it("a disconnect of the driver mid-generation: the others finish with their alone tokens, on another request's sessions", async () => {
    const alone: string[] = [];
    for (const body of OTHERS) alone.push((await completeOn(sharded.url, MODEL, body)).text);
    const shards = sharded.plan.shards.length;

    const before = await sharding();
    const abort = new AbortController();
    const x = stream(X, abort.signal);
    await expect.poll(() => x.tokens, { timeout: 20_000, interval: 10 }).toBeGreaterThan(0);
    const others = OTHERS.map((body) => stream(body));
    await expect.poll(() => Math.min(...others.map((o) => o.tokens)), { timeout: 20_000, interval: 10 }).toBeGreaterThanOrEqual(2);
    const joined = await sharding();
    // So far every frame went on X's sessions: X drove every step, B's and C's rows included.
    expect(joined.shard_invocations - before.shard_invocations).toBe(shards);
    expect(joined.sequence_steps - before.sequence_steps).toBeGreaterThan(joined.shard_steps - before.shard_steps);

    abort.abort();
    await x.done.catch(() => {});
    expect(x.tokens).toBeLessThan(X.max_tokens);
    await Promise.all(others.map((o) => o.done));
    others.forEach((o, i) => {
      expect(o.status).toBe(200);
      expect(o.text, `stream ${i}`).toBe(alone[i]);
    });
    const after = await sharding();
    // The steps after X's end went on the sessions of a request that was still there.
    expect(after.shard_invocations - joined.shard_invocations).toBeGreaterThanOrEqual(shards);
    expect(after.lost - before.lost).toBe(0);
    await expect.poll(async () => (await health(sharded.url)).body.batch, { timeout: 20_000, interval: 50 }).toMatchObject({ live: 0, waiting: 0 });
  }, 120_000);
});
