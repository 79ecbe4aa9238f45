/**
 * Batched steps in the sharded deployment, in real workerd: four concurrent streams to the
 * coordinator (MAX_BATCH 4) share each step's frames, and each gets the tokens the single-isolate
 * Worker gives it alone (greedy and seeded sampling). The layer shard forgets one sequence of a
 * batched frame (TEST_FORGET_AT_RUN): only that sequence's prefix is re-run and every stream still
 * gets its tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, waitHealthy, type WorkerUnderTest } from "../worker/harness";
import { complete as completeOn, health, startSharded, type ShardedUnderTest } from "./harness";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "../worker/v8-flags";
import { synthGGUF } from "../../weights-tools/fixtures";

const KEY = "models/tiny-q4_0.gguf";
const VARS = { MODEL_ID: "edgelm-tiny", QUEUE_DEPTH: "8", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: "8" };

useWorkerdV8Flags(localWorkerdV8Flags());

let single: WorkerUnderTest;
let sharded: ShardedUnderTest;

const complete = (url: string, body: Record<string, unknown>) => completeOn(url, "edgelm-tiny", body);

beforeAll(async () => {
  const model = await synthGGUF("tiny", "q4_0");
  [single, sharded] = await Promise.all([
    startWorker({ vars: { ...VARS, MODEL_KEY: KEY, ENGINE: "wasm" }, r2Model: model }),
    // 19 MiB: 1 layer shard + 6 head shards; KV for 4 × 128 positions; the layer shard forgets a sequence in its 3rd batched run frame.
    startSharded({ model, key: KEY, budgetMb: 19, context: 128, sequences: 4, vars: { ...VARS, MAX_BATCH: "4" }, shardVars: { 0: { TEST_FORGET_AT_RUN: "3" } } }),
  ]);
  await Promise.all([waitHealthy({ url: single.url }), waitHealthy({ url: sharded.url }).catch((e) => { console.log(sharded.logs()); throw e; })]);
}, 120_000);

afterAll(async () => {
  await Promise.all([single?.close(), sharded?.close()]);
});

const streams: Record<string, unknown>[] = [
  { prompt: "Once upon a time", max_tokens: 12, temperature: 0, stream: true },
  { prompt: "The edge of the network is", max_tokens: 14, temperature: 0.9, top_p: 0.95, seed: 11, stream: true },
  { prompt: "a b c d e f g h i j k l m n o p", max_tokens: 10, temperature: 0.7, seed: 3, stream: true },
  { prompt: "Hello", max_tokens: 16, temperature: 0, stream: true },
];

describe("batched frames in workerd (coordinator + shard Durable Objects)", () => {
  it("four concurrent streams share steps and each gets the tokens it gets alone; the sequence a shard forgot is re-run alone", async () => {
    const want: Awaited<ReturnType<typeof complete>>[] = [];
    for (const body of streams) want.push(await complete(single.url, body));
    const before = (await health(sharded.url)).body.sharding;
    const got = await Promise.all(streams.map((body) => complete(sharded.url, body)));
    got.forEach((g, i) => {
      expect(g.status, `stream ${i}`).toBe(200);
      expect(g.text, `stream ${i}`).toBe(want[i].text);
      expect(g.text.length).toBeGreaterThan(0);
    });
    const after = (await health(sharded.url)).body.sharding;
    const steps = after.shard_steps - before.shard_steps;
    const sequenceSteps = after.sequence_steps - before.sequence_steps;
    // Batched: fewer steps than sequences fed (one step each, unbatched), and one frame per shard per step (plus the re-run's).
    expect(steps).toBeLessThan(sequenceSteps);
    expect(after.prefix_reruns - before.prefix_reruns).toBe(1);
    expect(after.shard_frames - before.shard_frames).toBe(steps * sharded.plan.shards.length + 1);
    expect(sharded.logs()).toMatch(/edgelm shard 0: forgot sequence \S+ \(TEST_FORGET_AT_RUN=3\)/);
    console.log(`4 streams: ${sequenceSteps} sequence steps in ${steps} steps (mean batch ${(sequenceSteps / steps).toFixed(2)}), ${after.shard_invocations - before.shard_invocations} invocations`);
  }, 120_000);

  it("again with no fault, not streamed: same tokens, no re-run; a request alone still works", async () => {
    const bodies = streams.map((b) => ({ ...b, stream: false }));
    const want: Awaited<ReturnType<typeof complete>>[] = [];
    for (const body of bodies) want.push(await complete(single.url, body));
    const before = (await health(sharded.url)).body.sharding;
    const got = await Promise.all(bodies.map((body) => complete(sharded.url, body)));
    got.forEach((g, i) => {
      expect(g.status).toBe(200);
      expect(g.text, `request ${i}`).toBe(want[i].text);
      expect(g.json.usage.completion_tokens).toBe(want[i].json.usage.completion_tokens);
    });
    const alone = await complete(sharded.url, bodies[0]);
    expect(alone.text).toBe(want[0].text);
    expect((await health(sharded.url)).body.sharding.prefix_reruns).toBe(before.prefix_reruns);
  }, 120_000);
});
