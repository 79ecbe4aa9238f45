/**
 * The files people download run at the edge too, not only in Node: a Q4_K_M file of the `small`
 * preset (Q4_K layers, Q6_K attn_v / ffn_down in the "more bits" layers and head), a Q4_1 file,
 * a Q8_0 file (its matrices repacked to Q8R) and a Q2_K file (Q2_K and Q3_K matrices, repacked to
 * Q2KR and Q3KR) are served by the Worker in workerd and by a sharded deployment, and both give the same greedy
 * text as `edgelm serve` on the same file (the same kernels: the bits agree, so the tokens do).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { complete, startSharded, type ShardedUnderTest } from "../shard/harness";
import { startWorker, waitHealthy, type WorkerUnderTest } from "./harness";

const VARS = { MODEL_ID: "edgelm-small", ENGINE: "wasm", CPU_BUDGET_MS: "0", QUEUE_DEPTH: "4", LOAD_WAIT_MS: "120000" };
const REQUEST = { prompt: "Once upon a time", max_tokens: 12, temperature: 0 };

/** The greedy answer of a file alone, from a server of its own. */
async function alone(file: string): Promise<string> {
  const s = await startServer({ modelPath: file, port: 0, engine: "wasm", threads: 1, log: () => {} });
  await s.ready;
  try {
    const id = ((await (await fetch(`${s.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0].id;
    const got = await complete(s.url, id, REQUEST);
    expect(got.status).toBe(200);
    return got.text;
  } finally {
    await s.close();
  }
}

describe.each([["q4_k_m"], ["q4_1"], ["q8_0"], ["q2_k"]])("a %s file of the small preset", (type) => {
  let file: string;
  let want: string;
  let single: WorkerUnderTest | undefined;
  let sharded: ShardedUnderTest | undefined;

  beforeAll(async () => {
    file = await synthGGUF("small", type);
    want = await alone(file);
    expect(want.length).toBeGreaterThan(0);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([single?.close(), sharded?.close()]);
  });

  it("the Worker serves it with edgelm serve's greedy text", async () => {
    const key = `models/small-${type}.gguf`;
    single = await startWorker({ vars: { ...VARS, MODEL_KEY: key }, r2Model: file });
    await waitHealthy(single);
    const h = (await (await fetch(`${single.url}/health`)).json()) as { engine: string };
    expect(h.engine).toMatch(/^wasm /);
    const got = await complete(single.url, "edgelm-small", REQUEST);
    expect(got.status).toBe(200);
    expect(got.text).toBe(want);
  }, 240_000);

  it("a sharded deployment serves it with the same text", async () => {
    sharded = await startSharded({ model: file, key: `models/small-${type}.gguf`, budgetMb: 24, context: 128, vars: { ...VARS, ENGINE: "sharded" } });
    await waitHealthy({ url: sharded.url });
    expect(sharded.plan.shards.length).toBeGreaterThan(1);
    const got = await complete(sharded.url, "edgelm-small", REQUEST);
    expect(got.status).toBe(200);
    expect(got.text).toBe(want);
  }, 300_000);
});
