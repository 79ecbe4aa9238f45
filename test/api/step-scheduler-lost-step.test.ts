/**
 * The polled scheduler's lost-step rule with steps that await I/O (the sharded coordinator's
 * frames), over the real wasm engine: each generation runs in an AsyncLocalStorage context of its
 * own, standing for a workerd request, and a context can be stopped the way workerd stops a
 * request: its timers never fire again (setTimeout is wrapped here to drop them), so its looks and
 * the I/O it awaits stop. A step is not taken as lost however long its I/O takes while its driver
 * lives; it is once its driver is stopped, and the others finish with the tokens they get alone; a
 * step that fails after its driver was released is given up, not blamed on the others.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { StepScheduler } from "../../src/api/step-scheduler";
import type { ServedModel } from "../../src/api/deps";
import { loadWasmEngine } from "../../src/engine/node";
import type { WasmEngine } from "../../src/engine/wasm-engine";
import { generate, type GenerateOptions } from "../../src/generate/generator";
import type { BatchEntry, Engine, StepOptions } from "../../src/model/engine";
import { synthGGUF } from "../../weights-tools/fixtures";
import { tinyModel } from "./helpers";

const als = new AsyncLocalStorage<number>();
/** Contexts stopped: their timers are dropped. */
const stopped = new Set<number>();
const realSetTimeout = globalThis.setTimeout;

let m: ServedModel;
let engine: WasmEngine;
beforeAll(async () => {
  m = await tinyModel();
  engine = await loadWasmEngine(await synthGGUF("tiny", "q4_0"), { threads: 1, sequences: 8, prefillChunk: 16 });
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const ctx = als.getStore();
    return realSetTimeout(() => {
      if (ctx === undefined || !stopped.has(ctx)) fn(...args);
    }, ms);
  }) as typeof setTimeout;
});
// A stopped context's loops are dead for good (their timers were dropped); later tests reuse the ids.
beforeEach(() => stopped.clear());
afterAll(() => {
  globalThis.setTimeout = realSetTimeout;
});

const PROMPTS = ["The quick brown fox", "Once upon a time", "In a hole in the ground", "Hello there"];
const request = (i: number): GenerateOptions => ({ prompt: m.tokenizer.encode(PROMPTS[i]), maxTokens: 3, seed: 40 + i, sampling: { temperature: 0.8 }, stopTokenIds: [] });

async function ids(e: Engine, opts: GenerateOptions): Promise<number[]> {
  const out: number[] = [];
  for await (const ev of generate(e, m.tokenizer, opts)) if (ev.type === "token") out.push(ev.id);
  return out;
}

/** An I/O wait in the current context: it never ends once the context is stopped. */
const io = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The wasm engine behind a step that awaits `stepIo(n)` first (n: the step's number from 1); each step's driver context, and each sequence's owner. */
function slowSteps(stepIo: (n: number, opts: StepOptions | undefined) => Promise<void>) {
  const owner = new Map<unknown, number>();
  const steps: { ctx: number | undefined; driverOwner: number | undefined; owners: number[] }[] = [];
  const e: Engine & Required<Pick<Engine, "forwardBatch">> = {
    name: engine.name,
    config: engine.config,
    newSequence: () => {
      const seq = engine.newSequence();
      owner.set(seq, als.getStore()!);
      return seq;
    },
    releaseSequence: (s) => engine.releaseSequence(s),
    forward: (s, t, p, o) => engine.forward(s, t, p, o),
    async forwardBatch(entries: readonly BatchEntry[], opts?: StepOptions) {
      steps.push({ ctx: als.getStore(), driverOwner: owner.get(opts?.driver), owners: entries.map((x) => owner.get(x.seq)!) });
      await stepIo(steps.length, opts);
      return engine.forwardBatch(entries);
    },
  };
  return { engine: e, steps, owner };
}

async function aloneIds(): Promise<number[][]> {
  const out = [];
  for (let i = 0; i < PROMPTS.length; i++) out.push(await ids(engine, request(i)));
  return out;
}

const polled = (e: Engine) => new StepScheduler(e, { maxBatch: 4, maxBatchTokens: 32, pollMs: 1, keepDriver: true });

describe("StepScheduler, polled, steps that await I/O: the lost-step rule", () => {
  it("a step awaiting I/O in a live request is never taken as lost, however many looks the others make meanwhile", async () => {
    const want = await aloneIds();
    // 400 ms per step: the three others make well over LOST_STEP_LOOKS (500) looks during each.
    const rec = slowSteps(() => io(400));
    const s = polled(rec.engine);
    const got = await Promise.all(PROMPTS.map((_, i) => als.run(i, () => ids(s, request(i)))));
    expect(got).toEqual(want);
    expect(s.batchStats.lost).toBe(0);
    // Each step ran once: the engine saw as many steps as the scheduler counted.
    expect(rec.steps.length).toBe(s.batchStats.steps);
    // Run in its driver's own context, and the driver has a row in it; kept while it is in the steps.
    for (const st of rec.steps) {
      expect(st.ctx).toBe(st.driverOwner);
      expect(st.owners).toContain(st.ctx);
    }
    rec.steps.forEach((st, i) => {
      if (i > 0 && st.owners.includes(rec.steps[i - 1].ctx!)) expect(st.ctx).toBe(rec.steps[i - 1].ctx);
    });
  }, 30_000);

  it("a lone driver's step awaiting I/O is not taken as lost when another request arrives during it", async () => {
    const want = await aloneIds();
    // The first step (request 0's prompt, alone) waits 1.2 s: request 1, arriving meanwhile, makes
    // well over LOST_STEP_LOOKS looks during it.
    const rec = slowSteps((n) => io(n === 1 ? 1200 : 0));
    const s = polled(rec.engine);
    const first = als.run(0, () => ids(s, request(0)));
    while (rec.steps.length === 0) await io(1);
    const second = als.run(1, () => ids(s, request(1)));
    expect([await first, await second]).toEqual(want.slice(0, 2));
    expect(s.batchStats.lost).toBe(0);
    expect(rec.steps.length).toBe(s.batchStats.steps);
  }, 30_000);

  it("a step whose driver's request is stopped mid-step is taken as lost, and the others finish with their own tokens", async () => {
    const want = await aloneIds();
    let victim: number | undefined;
    const rec = slowSteps(async (n) => {
      if (n === 2) {
        // The request running this step is stopped: its timers die, and the I/O it awaits with them.
        victim = als.getStore()!;
        stopped.add(victim);
      }
      await io(20);
    });
    const s = polled(rec.engine);
    const runs = PROMPTS.map((_, i) => als.run(i, () => ids(s, request(i))));
    await expect.poll(() => victim, { timeout: 10_000 }).toBeDefined();
    const others = PROMPTS.map((_, i) => i).filter((i) => i !== victim);
    const got = await Promise.all(others.map((i) => runs[i]));
    expect(got).toEqual(others.map((i) => want[i]));
    expect(s.batchStats.lost).toBe(1);
    // The step given up was run again, by one of the living, with the stopped one's row still in it.
    expect(rec.steps[2].ctx).not.toBe(victim);
    expect(rec.steps[2].owners).toEqual(rec.steps[1].owners);
    for (const st of rec.steps.slice(2)) expect(st.owners).toContain(st.ctx);
  }, 30_000);

  it("a driver released mid-step waits for its step to end; the step's failure then is given up, not blamed on the others", async () => {
    const want = await aloneIds();
    let s!: StepScheduler;
    const events: string[] = [];
    let victim: number | undefined;
    const rec = slowSteps(async (n, opts) => {
      if (n !== 2) return io(20);
      victim = rec.owner.get(opts!.driver);
      setTimeout(() => s.releaseSequence(opts!.driver), 10);
      await io(40);
      events.push("step failed");
      // As workerd cancels an ending request's I/O.
      throw new Error("the request was cancelled");
    });
    s = polled(rec.engine);
    const runs = PROMPTS.map((_, i) => als.run(i, () => ids(s, request(i)).catch((e: Error) => (events.push("driver's call ended"), e))));
    await expect.poll(() => victim, { timeout: 10_000 }).toBeDefined();
    const others = PROMPTS.map((_, i) => i).filter((i) => i !== victim);
    expect(await Promise.all(others.map((i) => runs[i]))).toEqual(others.map((i) => want[i]));
    expect(await runs[victim!]).toMatchObject({ message: expect.stringMatching(/released while its forward call waited/) });
    expect(events).toEqual(["step failed", "driver's call ended"]);
    expect(s.batchStats.lost).toBe(1);
    expect(s.batchStats).toMatchObject({ live: 0, waiting: 0 });
  }, 30_000);
});
