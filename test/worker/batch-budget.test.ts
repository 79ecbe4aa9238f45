/**
 * The Worker's per-request figures when generations are batched (MAX_BATCH > 1): the CPU-budget
 * estimate (src/worker/budget.ts) adds the one step an invocation may run beyond its own rows, and
 * the edge's "queue full" (src/worker/edge-view.ts) holds only once MAX_BATCH generations run and
 * QUEUE_DEPTH wait, or the KV budget is reserved.
 */
import { describe, expect, it } from "vitest";
import type { ModelState } from "../../src/api/deps";
import { GenerationQueue, type Release } from "../../src/api/queue";
import { batchSlackMs, decide, estimate } from "../../src/worker/budget";
import { edgeView } from "../../src/worker/edge-view";
import type { WorkerConfig } from "../../src/worker/env";

const rates = { cpuBudgetMs: 30_000, prefillTokensPerS: 200, decodeTokensPerS: 10, maxBatch: 1, maxBatchTokens: 64 };
const batched = { ...rates, maxBatch: 4 };

describe("CPU-budget estimate with batching", () => {
  it("one at a time: the request's own prompt and tokens, nothing more", () => {
    expect(batchSlackMs(rates)).toBe(0);
    expect(estimate({ promptTokens: 200, maxTokens: 100 }, rates)).toEqual({ cpuMs: 1000 + 10_000, budgetMs: 24_000, maxTokensThatFit: 230 });
  });

  it("batched: one step beyond its own rows, the larger of MAX_BATCH_TOKENS prompt rows and MAX_BATCH decode rows", () => {
    // 64 rows at 200 tok/s = 320 ms; 4 decode rows at 10 tok/s = 400 ms.
    expect(batchSlackMs(batched)).toBe(400);
    expect(batchSlackMs({ ...batched, maxBatchTokens: 256 })).toBe(1280);
    const e = estimate({ promptTokens: 200, maxTokens: 100 }, batched)!;
    expect(e.cpuMs).toBe(1000 + 400 + 10_000);
    // (24 000 − 1 000 − 400) ms at 10 tok/s.
    expect(e.maxTokensThatFit).toBe(226);
  });

  it("a request that fits alone but not with the step is refused, and the reason names the batched step", () => {
    const a = { promptTokens: 200, maxTokens: 228, maxTokensGiven: true, maxTokensParam: "max_tokens" } as Parameters<typeof decide>[0];
    expect(decide(a, rates).route).toBe("edge");
    const d = decide(a, batched);
    expect(d).toMatchObject({ route: "refuse", param: "max_tokens" });
    expect(d.route === "refuse" && d.reason).toMatch(/0\.4 s for one batched step of other requests' rows.*set max_tokens to at most 226/);
    // Without max_tokens from the client, it gets what fits instead.
    expect(decide({ ...a, maxTokensGiven: false }, batched)).toMatchObject({ route: "edge", maxTokens: 226 });
  });
});

describe("the edge's queue-full view with MAX_BATCH running", () => {
  const ready = { status: "ready" } as ModelState;
  const full = (q: GenerationQueue) => edgeView(ready, q, {} as WorkerConfig).queueFull;

  it("is full only once MAX_BATCH run and QUEUE_DEPTH wait", async () => {
    const q = new GenerationQueue(1, 1, { maxRunning: 4 });
    const held: Release[] = [];
    for (let i = 0; i < 4; i++) {
      expect(full(q)).toBe(false);
      held.push(await q.acquire());
    }
    // Four run: the next would wait, and one may.
    expect(full(q)).toBe(false);
    const waiter = q.acquire();
    expect(full(q)).toBe(true);
    await expect(q.acquire()).rejects.toMatchObject({ status: 429, code: "queue_full" });
    held.pop()!();
    held.push(await waiter);
    expect(full(q)).toBe(false);
    held.forEach((r) => r());
  });

  it("with QUEUE_DEPTH 0, one running generation of four does not make it full", async () => {
    const q = new GenerationQueue(0, 1, { maxRunning: 4 });
    const held = [await q.acquire()];
    expect(full(q)).toBe(false);
    for (let i = 0; i < 3; i++) held.push(await q.acquire());
    expect(full(q)).toBe(true);
    await expect(q.acquire()).rejects.toMatchObject({ status: 429 });
    held.forEach((r) => r());
  });

  it("with no room to wait, is full as soon as the KV budget is reserved, though fewer than MAX_BATCH run", async () => {
    const q = new GenerationQueue(0, 1, { maxRunning: 4, kv: { blocks: 10, blockPositions: 16 } });
    const r = await q.acquire(undefined, 160);
    expect(q.load).toEqual({ running: 1, reservedBlocks: 10 });
    expect(full(q)).toBe(true);
    r();
    expect(full(q)).toBe(false);
    expect(q.wouldRefuse(160)).toBe(false);
  });
});
