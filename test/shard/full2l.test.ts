/**
 * Sharding at the real model's tensor shapes, in workerd: the synthetic `full2l` (every Stable LM 2
 * 1.6B shape, 2 layers, Q4_0, ~280 MB) planned so that both cuts are exercised — one layer per
 * layer shard and the 100352-row head split across two head shards — against the single-isolate
 * Worker on the same file. The tiny model's shapes (hidden 64) cannot show a planner estimate or
 * a head slice boundary that is wrong only at hidden 2048 / Q4R repack sizes; this can.
 *
 * The reference is the Worker in the bare workerd binary reading the file through a folder
 * binding: a second local-R2 put of 280 MB would cost ~20 s on CI for nothing the test checks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitHealthy } from "../worker/harness";
import { startBareWorkerd, type BareWorkerd } from "../worker/bare-workerd";
import { complete as completeOn, startSharded, type ShardedUnderTest } from "./harness";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "../worker/v8-flags";
import { synthGGUF } from "../../weights-tools/fixtures";
import type { ShardInfo } from "../../src/shard/protocol";

const MiB = 2 ** 20;
const KEY = "models/full2l-q4_0.gguf";
const VARS = { MODEL_ID: "edgelm-full2l", QUEUE_DEPTH: "4", LOAD_WAIT_MS: "300000", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: "8" };
// 80 MiB at context 256 is the budget where two layers no longer fit one shard (~82 MiB) but half
// the head does (~78 MiB): 2 layer shards + 2 head shards, the fewest isolates that cut both ways.
const BUDGET_MB = 80;
const CONTEXT = 256;

useWorkerdV8Flags(localWorkerdV8Flags());

let single: BareWorkerd;
let sharded: ShardedUnderTest;

/** Healthy within 3 minutes (cold local R2 on 2 cores), or the test fails with that workerd's logs. */
async function ready(url: string, logs: () => string): Promise<void> {
  await waitHealthy({ url }, 180_000).catch((e) => {
    console.log(logs());
    throw e;
  });
}

const health = async (url: string) => (await (await fetch(`${url}/health`)).json()) as any;

const complete = (url: string, body: Record<string, unknown>) => completeOn(url, VARS.MODEL_ID, body);

beforeAll(async () => {
  const model = await synthGGUF("full2l", "q4_0");
  [single, sharded] = await Promise.all([
    // The WASM engine, which the shards run: tokens and logprobs must match it bit for bit.
    startBareWorkerd({ vars: { ...VARS, MODEL_KEY: KEY, ENGINE: "wasm" }, model }),
    startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS }),
  ]);
  await Promise.all([ready(single.url, single.logs), ready(sharded.url, sharded.logs)]);
}, 300_000);

afterAll(async () => {
  await Promise.all([single?.close(), sharded?.close()]);
});

describe("sharded full2l (1.6B shapes, Q4_0) in workerd vs the single-isolate Worker", () => {
  it("the plan cuts both ways: 2 layer shards and 2 head shards; /health reports it", async () => {
    const kinds = sharded.plan.shards.map((s) => s.kind);
    expect(kinds.filter((k) => k === "layers")).toHaveLength(2);
    expect(kinds.filter((k) => k === "head")).toHaveLength(2);
    const h = await health(sharded.url);
    expect(h).toMatchObject({ status: "ok", model: VARS.MODEL_ID, source: "r2 (sharded)", context_length: CONTEXT });
    expect(h.engine).toMatch(/^sharded \(2 layer \+ 2 head shards, budget 80 MiB each\)/);
    expect((await health(single.url)).engine).toMatch(/^wasm /);
  });

  it("the first request loads every shard inside its plan's page maximum, and the plan is within 2 MiB of what the shard allocates", async () => {
    // The shards load inside the first request's sessions.
    expect((await complete(sharded.url, { prompt: "warm", max_tokens: 1 })).status).toBe(200);
    const rows: string[] = [];
    for (const s of sharded.plan.shards) {
      const logged = new RegExp(`edgelm shard ${s.index} \\(${s.script}\\): loaded in (\\d+) ms, wasm ([\\d.]+) of ([\\d.]+) MiB`).exec(sharded.logs());
      expect(logged, `${s.script} load line`).not.toBeNull();
      // The same single instance the coordinator reaches (idFromName("shard")): its fetch() answers the runtime's info.
      const ns = await sharded.mf.getDurableObjectNamespace("SHARD", s.script);
      const info = (await (await ns.get(ns.idFromName("shard")).fetch("http://shard/info")).json()) as ShardInfo;
      expect(info).toMatchObject({ index: s.index, kind: s.kind, script: s.script, maxBytes: s.maxPages * 65536 });
      expect(info.memoryBytes).toBeLessThanOrEqual(info.maxBytes);
      expect(info.allocatedBytes).toBeLessThanOrEqual(info.memoryBytes);
      // An overestimating planner wastes the 128 MB isolate; this bounds it at the real shapes.
      expect(info.maxBytes - info.allocatedBytes, s.script).toBeLessThan(2 * MiB);
      rows.push(
        `  ${s.script} ${s.kind.padEnd(6)} wasm ${(info.memoryBytes / MiB).toFixed(1)} MiB (allocated ${(info.allocatedBytes / MiB).toFixed(1)}) of max ${(info.maxBytes / MiB).toFixed(1)} MiB; ` +
          `plan total ${(s.memory.total / MiB).toFixed(1)} of budget ${BUDGET_MB} MiB; loaded in ${logged![1]} ms, ${info.kernels} kernels`,
      );
    }
    console.log(`full2l shards (budget ${BUDGET_MB} MiB, context ${CONTEXT}):\n${rows.join("\n")}`);
  });

  const requests: [string, Record<string, unknown>][] = [
    ["greedy, with logprobs", { prompt: "Once upon a time", max_tokens: 12, temperature: 0, logprobs: 2 }],
    ["seeded sampling, streamed", { prompt: "The edge of the network", max_tokens: 12, temperature: 0.9, top_p: 0.95, seed: 11, stream: true }],
    ["seeded sampling with logprobs, a prompt longer than the prefill chunk", { prompt: "a b c d e f g h i j k l m n o p q r s t", max_tokens: 6, temperature: 0.7, seed: 3, logprobs: 2 }],
  ];
  for (const [name, body] of requests) {
    it(`same tokens as the single-isolate engine: ${name}`, async () => {
      const a = await complete(single.url, body);
      const b = await complete(sharded.url, body);
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect(a.text.length).toBeGreaterThan(0);
      expect(b.text).toBe(a.text);
      if (!body.stream) {
        expect(b.json.choices[0].finish_reason).toBe(a.json.choices[0].finish_reason);
        expect(b.json.usage.completion_tokens).toBe(a.json.usage.completion_tokens);
        expect(b.json.choices[0].logprobs.tokens).toEqual(a.json.choices[0].logprobs.tokens);
        expect(b.json.choices[0].logprobs.token_logprobs).toEqual(a.json.choices[0].logprobs.token_logprobs);
        expect(b.json.choices[0].logprobs.top_logprobs).toEqual(a.json.choices[0].logprobs.top_logprobs);
      }
    });
  }

  it("each shard is invoked once per request (stream transport); frames = shards × forward passes; subrequests inside the Free plan's 50", async () => {
    const before = (await health(sharded.url)).sharding;
    // A prompt shorter than the prefill chunk (8): one prefill pass.
    const r = await complete(sharded.url, { prompt: "Counting hops", max_tokens: 16, temperature: 0 });
    expect(r.status).toBe(200);
    expect(r.json.usage.completion_tokens).toBe(16);
    expect(r.json.usage.prompt_tokens).toBeLessThanOrEqual(8);
    const after = (await health(sharded.url)).sharding;
    const invocations = after.shard_invocations - before.shard_invocations;
    const reads = after.embedding_reads - before.embedding_reads;
    expect(invocations).toBe(sharded.plan.shards.length);
    expect(after.shard_frames - before.shard_frames).toBe(16 * sharded.plan.shards.length);
    expect(after.prefix_reruns).toBe(before.prefix_reruns);
    expect(invocations + reads).toBeLessThanOrEqual(50);
    expect(invocations).toBeLessThanOrEqual(32);
  });
});
