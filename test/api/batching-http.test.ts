/**
 * `edgelm serve` serving many users at once, over real HTTP: concurrent
 * seeded streams get the same text as when served alone, /health and
 * /metrics show the batch and the KV blocks, a disconnect frees its blocks,
 * a shared system prompt is served from the prefix cache (usage reports
 * cached_tokens), and admission refuses what can never fit (400) or cannot
 * wait (429).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "./helpers";

let batched: RunningServer;
let single: RunningServer;
beforeAll(async () => {
  const path = await synthGGUF("tiny", "q4_0");
  // The tiny model's KV block (16 positions × 2 layers × K,V × 4 heads × 16) is 8 KiB: 1/4 MiB holds 32 blocks, 512 positions.
  batched = await startServer({ modelPath: path, port: 0, threads: 1, maxBatch: 4, kvBudgetMB: 1 / 4, queueDepth: 2, log: () => {} });
  single = await startServer({ modelPath: path, port: 0, threads: 1, maxBatch: 1, log: () => {} });
  await Promise.all([batched.ready, single.ready]);
});
afterAll(() => Promise.all([batched?.close(), single?.close()]));

const post = (s: RunningServer, body: unknown, init: RequestInit = {}) =>
  fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...init });
const health = async (s: RunningServer) => (await fetch(`${s.url}/health`)).json();
const streamText = async (res: Response) => parseSSE(await res.text()).events.map((e) => e.choices[0]?.text ?? "").join("");

const PROMPTS = ["The quick brown fox", "Once upon a time", "In a hole in the ground", "Hello", "Call me Ishmael.", "It was a bright cold day"];
const body = (i: number) => ({ prompt: PROMPTS[i], max_tokens: 12, seed: 40 + i, temperature: 0.7, top_p: 0.95, stream: true });

describe("edgelm serve, batched", { timeout: 60_000 }, () => {
  it("four concurrent seeded streams each get the text they get alone, in shared steps", async () => {
    const alone: string[] = [];
    for (let i = 0; i < 4; i++) alone.push(await streamText(await post(single, body(i))));
    const together = await Promise.all([0, 1, 2, 3].map(async (i) => streamText(await post(batched, body(i)))));
    expect(together).toEqual(alone);
    const h = await health(batched);
    expect(h.engine).toMatch(/batches of up to 4 sequences/);
    expect(h.batch.steps).toBeGreaterThan(0);
    expect(h.batch.sequences / h.batch.steps).toBeGreaterThan(1.5); // steps really were shared
    expect(h.batch.live).toBe(0);
    expect(h.queue).toMatchObject({ running: false, active: 0, max_running: 4, reserved_kv_blocks: 0 });
    expect(h.kv).toMatchObject({ blocks: 32, blockPositions: 16, used: 0 });
    const metrics = await (await fetch(`${batched.url}/metrics`)).text();
    expect(metrics).toMatch(/^edgelm_kv_blocks 32$/m);
    expect(metrics).toMatch(/^edgelm_batch_steps_total \d+$/m);
    expect(metrics).toMatch(/^edgelm_generations_running 0$/m);
  });

  it("a shared system prompt comes from the prefix cache the second time; usage says how much", async () => {
    const system = "You are a helpful assistant. Answer briefly and politely, in plain English, without lists or markdown. ".repeat(2);
    const ask = async (q: string) => (await post(batched, { prompt: system + q, max_tokens: 3, temperature: 0 })).json();
    const first = await ask("What is a fox?");
    const second = await ask("What is a dog?");
    expect(first.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(16);
    expect(second.usage.prompt_tokens_details.cached_tokens % 16).toBe(0);
    const alone = await (await post(single, { prompt: system + "What is a dog?", max_tokens: 3, temperature: 0 })).json();
    expect(second.choices[0].text).toBe(alone.choices[0].text);
    expect((await health(batched)).kv.prefixHits).toBeGreaterThanOrEqual(1);
  });

  it("a client that disconnects mid-stream leaves the batch and frees its blocks", async () => {
    const ac = new AbortController();
    const res = await post(batched, { ...body(0), max_tokens: 400 }, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    await vi.waitFor(async () => expect((await health(batched)).kv.used).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
    ac.abort();
    await vi.waitFor(async () => expect(await health(batched)).toMatchObject({ batch: { live: 0 }, kv: { used: 0 }, queue: { active: 0 } }), { timeout: 10_000, interval: 20 });
  });

  it("refuses at once what could never fit the KV budget (400), and what cannot wait (429)", async () => {
    const big = await post(batched, { prompt: "Hello", max_tokens: 600 });
    expect(big.status).toBe(400);
    expect((await big.json()).error).toMatchObject({ code: "kv_budget_exceeded", param: "max_tokens" });
    // Each reserves 300 positions (19 blocks) of 32: one runs, two wait, the rest are refused.
    const ac = new AbortController();
    const long = { prompt: "Hello", max_tokens: 299, temperature: 0, stream: true };
    const answers = await Promise.all(Array.from({ length: 5 }, () => post(batched, long, { signal: ac.signal })));
    const refused = answers.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect((await refused[0].json()).error.code).toBe("queue_full");
    ac.abort();
    await vi.waitFor(async () => expect((await health(batched)).queue).toMatchObject({ active: 0, waiting: 0, reserved_kv_blocks: 0 }), { timeout: 10_000, interval: 20 });
  });
});
