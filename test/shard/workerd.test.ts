/**
 * Sharded generation in real workerd against the single-isolate Worker on the same file: the
 * same requests give the same tokens (greedy and seeded sampling, streamed and not); each shard is
 * invoked once per request (stream transport), and the counts stay inside the platform limits;
 * a shard that restarts mid-generation is survived; a request beyond the plan is a clear 4xx.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, waitHealthy, type WorkerUnderTest } from "../worker/harness";
import { complete as completeOn, startSharded, type ShardedUnderTest } from "./harness";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "../worker/v8-flags";
import { synthGGUF } from "../../weights-tools/fixtures";

const KEY = "models/tiny-q4_0.gguf";
// The Free plan's subrequest cap, so that the admission test below can reach it in a few tokens (the default is the Paid plan's 10,000).
const VARS = { MODEL_ID: "edgelm-tiny", QUEUE_DEPTH: "4", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: "8", SUBREQUEST_LIMIT: "50" };
// A budget that splits the tiny model's head into several slices: logits are gathered from 5 shards.
const BUDGET_MB = 19;
const CONTEXT = 128;

// Both workerd processes of this file, the single-isolate one included (see v8-flags.ts).
useWorkerdV8Flags(localWorkerdV8Flags());

let single: WorkerUnderTest;
let sharded: ShardedUnderTest;

const ready = (url: string) => waitHealthy({ url });

const health = async (url: string) => (await (await fetch(`${url}/health`)).json()) as any;

const complete = (url: string, body: Record<string, unknown>) => completeOn(url, "edgelm-tiny", body);

beforeAll(async () => {
  const model = await synthGGUF("tiny", "q4_0");
  [single, sharded] = await Promise.all([
    // The WASM engine: the shards run its code, so tokens and logprobs must match it bit for bit
    // (the Worker's default, the reference engine, differs in the last float bits).
    startWorker({ vars: { ...VARS, MODEL_KEY: KEY, ENGINE: "wasm" }, r2Model: model }),
    startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS }),
  ]);
  await Promise.all([ready(single.url), ready(sharded.url).catch((e) => { console.log(sharded.logs()); throw e; })]);
}, 120_000);

afterAll(async () => {
  await Promise.all([single?.close(), sharded?.close()]);
});

describe("sharded Worker (workerd) vs single-isolate Worker", () => {
  it("/health reports the sharded engine; the first request loads every shard within its page maximum", async () => {
    expect((await complete(sharded.url, { prompt: "warm", max_tokens: 1 })).status).toBe(200);
    const h = await health(sharded.url);
    expect(h).toMatchObject({ status: "ok", model: "edgelm-tiny", source: "r2 (sharded)", context_length: CONTEXT });
    expect(h.engine).toMatch(/^sharded \(1 layer \+ 6 head shards/);
    for (const s of sharded.plan.shards) expect(sharded.logs()).toMatch(new RegExp(`edgelm shard ${s.index} \\(${s.script}\\): loaded in \\d+ ms, wasm [\\d.]+ of [\\d.]+ MiB`));
  });

  const requests: [string, Record<string, unknown>][] = [
    ["greedy", { prompt: "Once upon a time", max_tokens: 12, temperature: 0 }],
    ["seeded sampling, streamed", { prompt: "The edge of the network", max_tokens: 16, temperature: 0.9, top_p: 0.95, seed: 11, stream: true }],
    ["a prompt longer than the prefill chunk, with logprobs", { prompt: "a b c d e f g h i j k l m n o p q r s t u v w x y z", max_tokens: 6, temperature: 0.7, seed: 3, logprobs: 2 }],
  ];
  for (const [name, body] of requests) {
    it(`same tokens as the single-isolate engine: ${name}`, async () => {
      const a = await complete(single.url, body);
      const b = await complete(sharded.url, body);
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect(b.text).toBe(a.text);
      if (!body.stream) {
        expect(b.json.choices[0].finish_reason).toBe(a.json.choices[0].finish_reason);
        expect(b.json.usage.completion_tokens).toBe(a.json.usage.completion_tokens);
        if (body.logprobs) expect(b.json.choices[0].logprobs.token_logprobs).toEqual(a.json.choices[0].logprobs.token_logprobs);
      }
    });
  }

  it("each shard is invoked once per request (stream transport), whatever the token count; subrequests stay inside the Free plan's 50", async () => {
    const before = (await health(sharded.url)).sharding;
    const r = await complete(sharded.url, { prompt: "Counting hops", max_tokens: 20, temperature: 0 });
    expect(r.json.usage.completion_tokens).toBe(20);
    const after = (await health(sharded.url)).sharding;
    const invocations = after.shard_invocations - before.shard_invocations;
    const reads = after.embedding_reads - before.embedding_reads;
    expect(invocations).toBe(sharded.plan.shards.length);
    // 20 tokens: 1 prefill + 19 decode passes, each a frame to every shard.
    expect(after.shard_frames - before.shard_frames).toBe(20 * sharded.plan.shards.length);
    expect(invocations + reads).toBeLessThanOrEqual(50);
    expect(invocations).toBeLessThanOrEqual(32);
  });

  it("a request that could exceed the subrequest limit (the Free plan's 50, set here) is a clear 400 before any shard is called", async () => {
    const before = (await health(sharded.url)).sharding;
    const r = await complete(sharded.url, { prompt: "Counting hops", max_tokens: 60, temperature: 0 });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: "subrequest_limit_exceeded", param: "max_tokens" });
    expect(r.json.error.message).toMatch(/more than the 50 subrequests and 32 invocations a request may make here; set max_tokens to at most \d+/);
    const after = (await health(sharded.url)).sharding;
    expect(after.shard_invocations).toBe(before.shard_invocations);
    expect(after.shard_frames).toBe(before.shard_frames);
    // What the message says fits is admitted.
    const fit = Number(/at most (\d+)/.exec(r.json.error.message)![1]);
    expect((await complete(sharded.url, { prompt: "Counting hops", max_tokens: fit, temperature: 0 })).status).toBe(200);
  });

  it("a request beyond the plan's context is a clear 400 before any work", async () => {
    const r = await complete(sharded.url, { prompt: "hello", max_tokens: CONTEXT });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(new RegExp(`maximum context length is ${CONTEXT} tokens`));
  });
});

// The layer shard's Durable Object is reset by the platform (ctx.abort) mid-generation: its
// session breaks, and the next call reaches a new instance with no weights and no KV.
describe("a shard restarting mid-generation", () => {
  let crashy: ShardedUnderTest;
  beforeAll(async () => {
    const model = await synthGGUF("tiny", "q4_0");
    // The layer shard is reset after 5 frames: the prefill, then the 4th decode step of the first request.
    crashy = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, shardVars: { 0: { TEST_CRASH_AFTER_FRAMES: "5" } } });
    await ready(crashy.url);
  }, 120_000);
  afterAll(async () => {
    await crashy?.close();
  });

  it("is survived: the coordinator reconnects, the new instance loads and reports the sequence unknown, the prefix is re-run, the tokens are the same", async () => {
    const body = { prompt: "Once upon a time", max_tokens: 12, temperature: 0.8, seed: 5 };
    const want = await complete(single.url, body);
    const got = await complete(crashy.url, body);
    expect(got.status).toBe(200);
    expect(got.text).toBe(want.text);
    const h = await health(crashy.url);
    expect(h.sharding.prefix_reruns).toBe(1);
    expect(crashy.logs()).toMatch(/edgelm shard 0 \(edgelm-shard-0\): loaded in \d+ ms[\s\S]*edgelm shard 0 \(edgelm-shard-0\): loaded in/);
  });
});
