/**
 * Continuous batching in one Worker isolate, in the workerd binary itself (bare-workerd.ts: no
 * Miniflare in front, so disconnects and request contexts are workerd's own), MAX_BATCH = 4:
 * concurrent seeded streams get the text they get alone, in shared steps; a long prompt is fed
 * beside a decoding stream without leaving it out of a step (counted from the scheduler's own
 * step, row and sequence counters, not by timing); a disconnect frees its rows and KV blocks; the
 * queue bound gives 429 queue_full; a shared prefix is served from the cache.
 */
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sseEventsOf } from "../helpers/sse";
import { startBareWorkerd, type BareWorkerd } from "./bare-workerd";
import { parseSSE, requestLine, testModelPath, waitHealthy } from "./harness";

const VARS = {
  MODEL_KEY: "models/tiny-q4_0.gguf",
  MODEL_ID: "edgelm-tiny",
  ENGINE: "wasm",
  CPU_BUDGET_MS: "0",
  // Whole prompts in one forward call: the scheduler splits them into step-sized parts itself.
  PREFILL_CHUNK_TOKENS: "512",
  MAX_BATCH: "4",
  MAX_BATCH_TOKENS: "16",
  QUEUE_DEPTH: "4",
  STREAM_STALL_MS: "3000",
};

let batched: BareWorkerd;
let single: BareWorkerd;
beforeAll(async () => {
  const model = await testModelPath();
  [batched, single] = await Promise.all([startBareWorkerd({ vars: VARS, model }), startBareWorkerd({ vars: { ...VARS, MAX_BATCH: "1" }, model })]);
  await Promise.all([waitHealthy(batched), waitHealthy(single)]);
}, 180_000);
afterAll(() => Promise.all([batched?.close(), single?.close()]));

type Health = {
  batch: { steps: number; rows: number; sequences: number; live: number; maxBatch: number };
  kv: { used: number };
  queue: { active: number; waiting: number; max_running: number };
  engine: string;
};
const health = async (w: BareWorkerd): Promise<Health> => (await fetch(`${w.url}/health`)).json();
const post = (w: BareWorkerd, body: unknown, signal?: AbortSignal) =>
  fetch(`${w.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
const textOf = async (res: Response) => {
  expect(res.status).toBe(200);
  const data = parseSSE(await res.text()).data;
  expect(data.at(-1)).toBe("[DONE]");
  return data
    .slice(0, -1)
    .map((d) => (JSON.parse(d) as { choices: { text?: string }[] }).choices[0]?.text ?? "")
    .join("");
};
const PROMPTS = ["The quick brown fox", "Once upon a time", "In a hole in the ground", "Call me Ishmael.", "It was a bright cold day", "Hello there", "To be or not to be", "A"];
const body = (i: number, n = 12) => ({ prompt: PROMPTS[i], max_tokens: n, seed: 70 + i, temperature: 0.7, top_p: 0.95, stream: true });

/** A streaming completion whose socket the test can destroy, as a closed tab does (disconnect.test.ts says why not fetch's abort). */
function openStream(w: BareWorkerd, payload: unknown): Promise<{ id: string; disconnect: () => void }> {
  const json = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${w.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(json) } }, (res) => {
      res.once("data", () => resolve({ id: String(res.headers["x-request-id"]), disconnect: () => req.destroy() }));
    });
    req.on("error", reject);
    req.end(json);
  });
}

const idle = (w: BareWorkerd) =>
  vi.waitFor(async () => expect(await health(w)).toMatchObject({ batch: { live: 0 }, kv: { used: 0 }, queue: { active: 0, waiting: 0 } }), { timeout: 40_000, interval: 50 });

describe("batching in one Worker isolate (bare workerd)", { timeout: 120_000 }, () => {
  it("eight concurrent seeded streams (four at a time) each get the text they get alone, in shared steps", async () => {
    const alone: string[] = [];
    for (let i = 0; i < PROMPTS.length; i++) alone.push(await textOf(await post(single, body(i))));
    const h0 = await health(batched);
    const together = await Promise.all(PROMPTS.map(async (_, i) => textOf(await post(batched, body(i)))));
    expect(together).toEqual(alone);
    const h1 = await health(batched);
    expect(h1.engine).toMatch(/batches of up to 4 sequences, 16 rows$/);
    expect(h1.queue.max_running).toBe(4);
    // Shared steps: on average well over one sequence per step.
    expect((h1.batch.sequences - h0.batch.sequences) / (h1.batch.steps - h0.batch.steps)).toBeGreaterThan(2);
    await idle(batched);
    // The engine's gauges, named as edgelm serve names them, beside the Worker's own.
    const metrics = await (await fetch(`${batched.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    expect(value("edgelm_batch_steps_total")).toBeGreaterThanOrEqual(h1.batch.steps);
    expect(value("edgelm_batch_sequences_total")).toBeGreaterThanOrEqual(h1.batch.sequences);
    expect(value("edgelm_batch_rows_total")).toBeGreaterThanOrEqual(h1.batch.rows);
    expect(value("edgelm_batch_max_sequences")).toBe(4);
    for (const idle of ["edgelm_batch_live_sequences", "edgelm_generations_running", "edgelm_kv_blocks_used", "edgelm_kv_blocks_reserved", "edgelm_edge_queue_running"]) expect(value(idle)).toBe(0);
    expect(value("edgelm_kv_blocks_free") + value("edgelm_kv_blocks_cached")).toBe(value("edgelm_kv_blocks"));
    expect(value("edgelm_prefix_cache_hits_total")).toBeGreaterThanOrEqual(0);
  });

  it("a long prompt is fed in parts beside a decoding stream, and that stream has a row in each of its steps but the last part's", async () => {
    const a = await post(batched, body(0, 3000));
    const events = sseEventsOf(a);
    for (let n = 0; n < 3; ) if ((await events.next()).value?.includes('"finish_reason":null')) n++;
    // From here only A and B are live: every step holds A, B or both.
    const h0 = (await health(batched)).batch;
    const long = Array.from({ length: 400 }, (_, i) => 100 + ((i * 37) % 5000));
    const b = await post(batched, { prompt: long, max_tokens: 1, temperature: 0 });
    expect((await b.json()).usage.prompt_tokens).toBe(400);
    const h1 = (await health(batched)).batch;
    const [S, Q, R] = [h1.steps - h0.steps, h1.sequences - h0.sequences, h1.rows - h0.rows];
    // A has one row per step it is in, B 400 rows in all (max_tokens 1: its token comes from the prompt's logits).
    // Steps with A = R − 400, steps with both = Q − S, so B's steps without A = S − (R − 400).
    const bWithoutA = S - (R - 400);
    console.log(`long prompt: ${S} steps, ${Q} sequences, ${R} rows; B's steps without A: ${bWithoutA}`);
    // Parts of at most 15 beside A until what is left fits in one step's 16 rows.
    expect(Q - S).toBeGreaterThanOrEqual(Math.ceil((400 - 16) / 15));
    // Only its last part, which fits in a step, runs without A: prompts that end in a step run
    // before the decode rows (their first token a step sooner), and A has the step after it.
    expect(bWithoutA).toBe(1);
    await events.return(undefined);
    await idle(batched);
  });

  it("a client that disconnects mid-batch frees its rows and KV blocks; the others finish with their own text, though its request may have been running their steps", async () => {
    const alone = await Promise.all([1, 2].map(async (i) => textOf(await post(single, body(i, 40)))));
    const victim = await openStream(batched, body(0, 3000));
    const others = [1, 2].map(async (i) => textOf(await post(batched, body(i, 40))));
    await vi.waitFor(async () => expect((await health(batched)).batch.live).toBeGreaterThanOrEqual(2), { timeout: 10_000, interval: 10 });
    victim.disconnect();
    expect(await Promise.all(others)).toEqual(alone);
    await idle(batched);
    expect(requestLine(batched.logs(), victim.id)).toMatchObject({ outcome: "aborted" });
    expect(requestLine(batched.logs(), victim.id)!.completion_tokens).toBeLessThan(3000);
  });

  it("past MAX_BATCH running and QUEUE_DEPTH waiting, a request gets 429 queue_full", async () => {
    const hold = new AbortController();
    const statuses: number[] = [];
    const codes: string[] = [];
    const sent = Array.from({ length: 10 }, (_, i) =>
      // 1000 tokens each: four reservations fit the KV budget (two contexts of 4096), so the bound met is MAX_BATCH's.
      post(batched, body(i % PROMPTS.length, 1000), hold.signal).then(
        async (r) => {
          statuses.push(r.status);
          if (r.status === 429) codes.push((await r.json()).error.code);
        },
        () => {},
      ),
    );
    await vi.waitFor(async () => expect(await health(batched)).toMatchObject({ queue: { active: 4, waiting: 4 } }), { timeout: 10_000, interval: 20 });
    await vi.waitFor(() => expect(codes).toEqual(["queue_full", "queue_full"]), { timeout: 10_000, interval: 20 });
    hold.abort();
    await Promise.all(sent);
    await idle(batched);
  });

  it("a second request with the same long start is served from the prefix cache", async () => {
    const system = "You are a helpful assistant. Answer briefly and politely, in plain English. ".repeat(3);
    const ask = async (q: string) => (await post(batched, { prompt: system + q, max_tokens: 2, temperature: 0 })).json();
    expect((await ask("What is a fox?")).usage.prompt_tokens_details?.cached_tokens ?? 0).toBe(0);
    expect((await ask("What is a dog?")).usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(32);
  });

  it("return_token_ids: a second turn of prompt + the streamed reply's ids is served from the cache past the first prompt", async () => {
    const first = { prompt: "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole.", max_tokens: 24, seed: 9, temperature: 0.9, return_token_ids: true };
    const res = await post(batched, { ...first, stream: true });
    expect(res.status).toBe(200);
    const chunks = parseSSE(await res.text())
      .data.slice(0, -1)
      .map((d) => JSON.parse(d) as { choices: { prompt_token_ids?: number[]; token_ids: number[] }[] })
      .filter((c) => c.choices.length === 1);
    const prompt = chunks[0].choices[0].prompt_token_ids!;
    const reply = chunks.flatMap((c) => c.choices[0].token_ids);
    expect(reply).toHaveLength(24);
    const whole = await (await post(batched, first)).json();
    expect(whole.choices[0].token_ids).toEqual(reply);
    const second = await (await post(batched, { prompt: [...prompt, ...reply, ...prompt.slice(0, 5)], max_tokens: 2, temperature: 0 })).json();
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(Math.floor((prompt.length + reply.length - 1) / 16) * 16);
  });
});
