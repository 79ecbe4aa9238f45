/**
 * The continuous-batching scheduler (src/api/step-scheduler.ts) over the real
 * wasm engine, without HTTP: concurrent generations get exactly the tokens
 * they get alone (seeded sampling), in shared steps; a long prompt is fed over
 * several steps while the others decode in every one of them (checked from
 * the plans the engine was given, not by timing); an abort or a failing
 * sequence leaves the rest untouched. The polled mode (the Worker's) is run
 * with each generation in an AsyncLocalStorage context of its own, standing
 * for a workerd request context: every step must be run from the context of
 * one of its own members, and each member must run about its own rows' worth.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { StepScheduler } from "../../src/api/step-scheduler";
import type { ServedModel } from "../../src/api/deps";
import { loadWasmEngine } from "../../src/engine/node";
import type { WasmEngine } from "../../src/engine/wasm-engine";
import { generate, type GenerateEvent, type GenerateOptions } from "../../src/generate/generator";
import type { BatchEntry, Engine } from "../../src/model/engine";
import { synthGGUF } from "../../weights-tools/fixtures";
import { tinyModel } from "./helpers";

let m: ServedModel;
let engine: WasmEngine;
beforeAll(async () => {
  m = await tinyModel();
  engine = await loadWasmEngine(await synthGGUF("tiny", "q4_0"), { threads: 1, sequences: 8, prefillChunk: 16 });
});

const idsOf = (evs: GenerateEvent[]) => evs.flatMap((e) => (e.type === "token" ? [e.id] : []));

async function collect(e: Engine, opts: GenerateOptions): Promise<GenerateEvent[]> {
  const out: GenerateEvent[] = [];
  for await (const ev of generate(e, m.tokenizer, opts)) out.push(ev);
  return out;
}

type Stepper = Engine & Required<Pick<Engine, "forwardBatch">>;

/** `inner` with its batched step (and any of `over`) replaced, the rest passed through. */
function wrapped(inner: WasmEngine, forwardBatch: Stepper["forwardBatch"], over: Partial<Engine> = {}): Stepper {
  return {
    name: inner.name,
    config: inner.config,
    newSequence: () => inner.newSequence(),
    releaseSequence: (s) => inner.releaseSequence(s),
    forward: (s, t, p, o) => inner.forward(s, t, p, o),
    forwardBatch,
    ...over,
  };
}

/** The engine with every step's entries recorded (and a token that makes any step containing it fail). */
function recording(inner: WasmEngine, poison = -1) {
  const steps: { seq: unknown; rows: number; startPos: number; into?: Float32Array }[][] = [];
  const e = wrapped(inner, (entries: readonly BatchEntry[]) => {
    if (entries.some((x) => x.tokens.includes(poison))) throw new Error("poisoned step");
    steps.push(entries.map((x) => ({ seq: x.seq, rows: x.tokens.length, startPos: x.startPos ?? -1, into: x.into })));
    return inner.forwardBatch(entries);
  });
  return { engine: e, steps };
}

const PROMPTS = ["The quick brown fox", "Once upon a time", "In a hole in the ground", "A", "To be or not to be, that is", "Hello", "Call me Ishmael.", "It was a bright cold day"];
const request = (i: number, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  prompt: m.tokenizer.encode(PROMPTS[i]),
  maxTokens: 5 + i,
  seed: 100 + i,
  sampling: { temperature: 0.7, topP: 0.95 },
  stopTokenIds: [],
  ...extra,
});

describe("StepScheduler", () => {
  it("8 concurrent generations: each gets its tokens alone, in shared steps", async () => {
    const alone = [];
    for (let i = 0; i < 8; i++) alone.push(idsOf(await collect(engine, request(i))));
    const rec = recording(engine);
    const s = new StepScheduler(rec.engine, { maxBatch: 8, maxBatchTokens: 64, gatherMs: 2000 });
    const together = await Promise.all(PROMPTS.map((_, i) => collect(s, request(i)).then(idsOf)));
    expect(together).toEqual(alone);
    const forwards = alone.reduce((n, ids) => n + ids.length, 0); // one prompt step + (tokens − 1) decode steps each
    expect(s.batchStats.steps).toBe(rec.steps.length);
    expect(s.batchStats.steps).toBeLessThan(forwards / 3);
    expect(Math.max(...rec.steps.map((st) => st.length))).toBe(8);
    // Each generation's logits array reaches the engine with every row of its own, one array per sequence.
    for (const st of rec.steps) {
      for (const x of st) expect(x.into?.length).toBe(engine.config.vocabSize);
      expect(new Set(st.map((x) => x.into)).size).toBe(st.length);
    }
    const arrays = new Map<unknown, Set<Float32Array | undefined>>();
    for (const x of rec.steps.flat()) arrays.set(x.seq, (arrays.get(x.seq) ?? new Set()).add(x.into));
    expect([...arrays.values()].map((a) => a.size)).toEqual(Array(8).fill(1));
    expect(s.batchStats.live).toBe(0);
    expect(s.batchStats.waiting).toBe(0);
  });

  it("a long prompt is fed over several steps, and every stream already decoding has a row in each of them", async () => {
    const rec = recording(engine);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 8, gatherMs: 2000 });
    const long = Array.from({ length: 60 }, (_, i) => 10 + ((i * 7) % 200));
    const decoders = [0, 1].map((i) => collect(s, request(i, { maxTokens: 40 })));
    // Start the long prompt once both streams are decoding.
    while (rec.steps.length < 3) await new Promise((r) => setTimeout(r, 1));
    const before = rec.steps.length;
    const longRun = collect(s, { prompt: long, maxTokens: 2, seed: 1, stopTokenIds: [], prefillChunkTokens: 60 });
    const [a, b, l] = await Promise.all([...decoders, longRun]);
    expect(idsOf(l)).toEqual(idsOf(await collect(engine, { prompt: long, maxTokens: 2, seed: 1, stopTokenIds: [] })));
    const withLong = rec.steps.slice(before).filter((st) => st.some((x) => x.rows > 1));
    // 60 rows at most 8 − 2 a step (the two decode rows come first); the last part, which fits in
    // a step, runs alone (its first token sooner), and the decoders have the step after it.
    expect(withLong.length).toBeGreaterThanOrEqual(10);
    const last = withLong.at(-1)!;
    expect(last).toHaveLength(1);
    expect(rec.steps[rec.steps.indexOf(last) + 1].filter((x) => x.rows === 1).length).toBeGreaterThanOrEqual(2);
    for (const st of withLong.slice(0, -1)) {
      expect(st).toHaveLength(3);
      expect(st.filter((x) => x.rows === 1)).toHaveLength(2);
      expect(st.reduce((n, x) => n + x.rows, 0)).toBeLessThanOrEqual(8);
    }
    // The parts follow each other in place.
    const parts = withLong.map((st) => st.find((x) => x.rows > 1)!);
    parts.slice(1).forEach((p, i) => expect(p.startPos).toBe(parts[i].startPos + parts[i].rows));
    expect(idsOf(a)).toHaveLength(40);
    expect(idsOf(b)).toHaveLength(40);
  });

  it("a prompt that fits in a step runs before the waiting decode rows, in a step of prompts only; the decode rows always get the next step", async () => {
    const rec = recording(engine);
    const s = new StepScheduler(rec.engine, { maxBatch: 6, maxBatchTokens: 64, gatherMs: 2000 });
    const decoders = [0, 1].map((i) => collect(s, request(i, { maxTokens: 30 })));
    while (rec.steps.length < 3) await new Promise((r) => setTimeout(r, 1));
    // Prompts arriving one after another: each while the previous one's step runs.
    const shorts = [];
    for (const i of [2, 4, 6]) {
      const n = rec.steps.length;
      shorts.push(collect(s, request(i, { maxTokens: 3 })));
      while (rec.steps.length === n) await new Promise((r) => setTimeout(r, 0));
    }
    const alone = [];
    for (const i of [2, 4, 6]) alone.push(idsOf(await collect(engine, request(i, { maxTokens: 3 }))));
    expect((await Promise.all(shorts)).map(idsOf)).toEqual(alone);
    await Promise.all(decoders);
    const [d0, d1] = rec.steps[2].map((x) => x.seq);
    const promptSteps = rec.steps.slice(3).filter((st) => st.some((x) => x.rows > 1));
    expect(promptSteps.length).toBeGreaterThan(0);
    for (const st of promptSteps) {
      const i = rec.steps.indexOf(st);
      // A step with a prompt holds prompts only, unless the step before it already did.
      const afterPromptsOnly = rec.steps[i - 1].every((x) => x.rows > 1);
      if (!afterPromptsOnly) expect(st.every((x) => x.rows > 1)).toBe(true);
      // While both decode, neither misses two steps in a row.
      if (i + 1 < rec.steps.length && rec.steps.slice(i + 1).some((n) => n.some((x) => x.seq === d0) && n.some((x) => x.seq === d1))) {
        const next = rec.steps[i + 1];
        if (st.every((x) => x.rows > 1)) expect(next.map((x) => x.seq)).toEqual(expect.arrayContaining([d0, d1]));
      }
    }
  });

  it("a step made due by a call starts one macrotask later, never inside that call (what the caller queued is not held up by the step)", async () => {
    let inCall = false;
    let stepsInsideACall = 0;
    const e = wrapped(engine, (entries) => {
      if (inCall) stepsInsideACall++;
      return engine.forwardBatch(entries);
    });
    const s = new StepScheduler(e, { maxBatch: 2, maxBatchTokens: 16, gatherMs: 2000 });
    const [a, b] = [s.newSequence(), s.newSequence()];
    const first = s.forward(a, [1, 2, 3], 0);
    inCall = true;
    // b's call completes the gather: the step is due now.
    const second = s.forward(b, [4, 5], 0);
    inCall = false;
    expect(stepsInsideACall).toBe(0);
    const [la, lb] = await Promise.all([first, second]);
    expect([la.length, lb.length]).toEqual([1, 1]);
    expect(s.batchStats.steps).toBe(1);
    s.releaseSequence(a);
    s.releaseSequence(b);
  });

  it("an aborted generation leaves the batch at once; the others finish with their own tokens", async () => {
    const alone = [0, 2].map(async (i) => idsOf(await collect(engine, request(i, { maxTokens: 12 }))));
    const want = await Promise.all(alone);
    const rec = recording(engine);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 64, gatherMs: 2000 });
    const ac = new AbortController();
    const victim = (async () => {
      let n = 0;
      for await (const ev of generate(s, m.tokenizer, { ...request(1, { maxTokens: 30 }), signal: ac.signal })) if (ev.type === "token" && ++n === 3) ac.abort();
    })();
    const others = [0, 2].map(async (i) => idsOf(await collect(s, request(i, { maxTokens: 12 }))));
    await expect(victim).rejects.toThrow(/aborted/);
    expect(await Promise.all(others)).toEqual(want);
    expect(s.batchStats.live).toBe(0);
    // After the abort no step carries the victim: its steps are the first few only.
    const victimSeq = rec.steps[0].find((x) => x.rows === m.tokenizer.encode(PROMPTS[1]).length)!.seq;
    const last = rec.steps.findLastIndex((st) => st.some((x) => x.seq === victimSeq));
    expect(last).toBeLessThan(4);
  });

  it("a step that fails is re-run a sequence at a time: only the failing generation fails", async () => {
    const POISON = 77;
    const rec = recording(engine, POISON);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 64, gatherMs: 2000 });
    const want = idsOf(await collect(engine, request(0)));
    const [ok, bad] = await Promise.allSettled([collect(s, request(0)), collect(s, { ...request(1), prompt: [5, POISON, 9] })]);
    expect(ok.status === "fulfilled" && idsOf(ok.value)).toEqual(want);
    expect(bad.status === "rejected" && String(bad.reason)).toMatch(/poisoned step/);
    expect(s.batchStats.live).toBe(0);
  });

  it("plans decode rows first, then prompt rows, within maxBatch and maxBatchTokens; refuses bad options and calls", async () => {
    expect(() => new StepScheduler(engine, { maxBatch: 0, maxBatchTokens: 8 })).toThrow(/maxBatch must be a positive integer/);
    expect(() => new StepScheduler(engine, { maxBatch: 4, maxBatchTokens: 2 })).toThrow(/maxBatchTokens must be an integer ≥ maxBatch \(4\)/);
    expect(() => new StepScheduler(engine, { maxBatch: 4, maxBatchTokens: 8, pollMs: 0 })).toThrow(/pollMs must be a positive number of ms, got 0/);
    const s = new StepScheduler(engine, { maxBatch: 2, maxBatchTokens: 8 });
    await expect(s.forward(engine.newSequence(), [1])).rejects.toThrow(/not a live sequence/);
    const seq = s.newSequence();
    await expect(s.forward(seq, [])).rejects.toThrow(/no tokens/);
    s.releaseSequence(seq);
    await expect(s.forward(seq, [1], 0)).rejects.toThrow(/not a live sequence/);
  });
});

/** The engine with each step's driver (the context it ran in) and each sequence's owner recorded. */
function contexts(inner: WasmEngine, als: AsyncLocalStorage<number>, stepDelayMs = 0) {
  const owner = new Map<unknown, number>();
  const steps: { driver: number | undefined; rows: { owner: number; rows: number }[] }[] = [];
  const released: { owner: number; during: boolean }[] = [];
  let inStep = false;
  const step = async (entries: readonly BatchEntry[]) => {
    steps.push({ driver: als.getStore(), rows: entries.map((x) => ({ owner: owner.get(x.seq)!, rows: x.tokens.length })) });
    if (stepDelayMs === 0) return inner.forwardBatch(entries);
    inStep = true;
    await new Promise((r) => setTimeout(r, stepDelayMs));
    inStep = false;
    return inner.forwardBatch(entries);
  };
  const e = wrapped(inner, step, {
    newSequence: () => {
      const seq = inner.newSequence();
      owner.set(seq, als.getStore()!);
      return seq;
    },
    releaseSequence: (seq) => {
      released.push({ owner: owner.get(seq)!, during: inStep });
      inner.releaseSequence(seq);
    },
  });
  return { engine: e, steps, released };
}

describe("StepScheduler, polled (each caller looks for its own outcome: the Worker's mode)", () => {
  it("8 generations in contexts of their own: the tokens they get alone; each step run from one of its members' contexts, each member running about its own rows", async () => {
    const alone = [];
    for (let i = 0; i < 8; i++) alone.push(idsOf(await collect(engine, request(i))));
    const als = new AsyncLocalStorage<number>();
    const rec = contexts(engine, als);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 16, pollMs: 1 });
    const together = await Promise.all(PROMPTS.map((_, i) => als.run(i, () => collect(s, request(i)).then(idsOf))));
    expect(together).toEqual(alone);
    expect(rec.steps.length).toBeLessThan(alone.reduce((n, ids) => n + ids.length, 0) / 2);
    for (const st of rec.steps) expect(st.rows.map((r) => r.owner)).toContain(st.driver);
    for (let i = 0; i < 8; i++) {
      const own = rec.steps.reduce((n, st) => n + st.rows.filter((r) => r.owner === i).reduce((k, r) => k + r.rows, 0), 0);
      const ran = rec.steps.filter((st) => st.driver === i).reduce((n, st) => n + st.rows.reduce((k, r) => k + r.rows, 0), 0);
      // Within one step's rows of its own share.
      expect(Math.abs(ran - own)).toBeLessThanOrEqual(16);
    }
    expect(s.batchStats).toMatchObject({ live: 0, waiting: 0 });
  });

  it("a long prompt is fed over several steps, and a stream already decoding has a row in each of them", async () => {
    const als = new AsyncLocalStorage<number>();
    const rec = contexts(engine, als);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 8, pollMs: 1 });
    const decoder = als.run(0, () => collect(s, request(0, { maxTokens: 40 })));
    while (rec.steps.length < 3) await new Promise((r) => setTimeout(r, 1));
    const before = rec.steps.length;
    const long = Array.from({ length: 60 }, (_, i) => 10 + ((i * 7) % 200));
    await als.run(1, () => collect(s, { prompt: long, maxTokens: 1, seed: 1, stopTokenIds: [], prefillChunkTokens: 60 }));
    const withLong = rec.steps.slice(before).filter((st) => st.rows.some((r) => r.owner === 1));
    expect(withLong.length).toBeGreaterThanOrEqual(Math.ceil(60 / 7));
    // Its last part fits in a step and runs alone (the prompts-first rule).
    for (const st of withLong.slice(0, -1)) expect(st.rows.map((r) => r.owner)).toEqual([0, 1]);
    expect(withLong.at(-1)!.rows.map((r) => r.owner)).toEqual([1]);
    expect(idsOf(await decoder)).toHaveLength(40);
    // The decoder completes the step's set every time, yet it does not run the long prompt's rows:
    // each runs about its own rows (its CPU time, in a Worker), within one step's 8 rows.
    for (const who of [0, 1]) {
      const own = rec.steps.reduce((n, st) => n + st.rows.filter((r) => r.owner === who).reduce((k, r) => k + r.rows, 0), 0);
      const ran = rec.steps.filter((st) => st.driver === who).reduce((n, st) => n + st.rows.reduce((k, r) => k + r.rows, 0), 0);
      expect(Math.abs(ran - own)).toBeLessThanOrEqual(8);
    }
  });

  it("a generation whose consumer stops pulling holds the others up only until the gather deadline (counted in looks), and goes on when pulled again", async () => {
    const als = new AsyncLocalStorage<number>();
    const rec = contexts(engine, als);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 16, pollMs: 1, gatherMs: 20 });
    const want = idsOf(await collect(engine, request(1, { maxTokens: 10 })));
    const slow = als.run(1, () => generate(s, m.tokenizer, request(1, { maxTokens: 10 })));
    const first = await slow.next();
    expect(first.value).toMatchObject({ type: "token" });
    // The slow one is parked after its first token; the other runs its 30 tokens without it.
    const other = await als.run(0, () => collect(s, request(0, { maxTokens: 30 })));
    expect(idsOf(other)).toHaveLength(30);
    const rest = [];
    for await (const ev of { [Symbol.asyncIterator]: () => slow }) rest.push(ev);
    expect([first.value as GenerateEvent, ...rest].flatMap((e) => (e.type === "token" ? [e.id] : []))).toEqual(want);
  });

  it("the only live sequence takes its outcome when the step it drove ends, not at its next look; with another live, calls wait for looks", async () => {
    const ref = engine.newSequence();
    const alone = [...(await engine.forward(ref, [5, 6, 7], 0))];
    engine.releaseSequence(ref);
    const s = new StepScheduler(recording(engine).engine, { maxBatch: 4, maxBatchTokens: 16, pollMs: 1 });
    vi.useFakeTimers();
    try {
      // No timer fires unless advanced: a call that waited for a look would not resolve here.
      const seq = s.newSequence();
      let done = false;
      const first = s.forward(seq, [5, 6, 7], 0).finally(() => (done = true));
      for (let i = 0; i < 50 && !done; i++) await Promise.resolve();
      expect(done).toBe(true);
      expect(await first).toEqual(alone);
      const other = s.newSequence();
      done = false;
      const next = s.forward(seq, [8], 3).finally(() => (done = true));
      for (let i = 0; i < 50; i++) await Promise.resolve();
      expect(done).toBe(false);
      // The other never calls: after the gather deadline (5 looks) the step runs without it.
      await vi.advanceTimersByTimeAsync(10);
      await next;
      s.releaseSequence(other);
      s.releaseSequence(seq);
    } finally {
      vi.useRealTimers();
    }
    expect(s.batchStats).toMatchObject({ live: 0, waiting: 0 });
  });

  it("a sequence released while its step runs is freed in the engine only once the step has ended", async () => {
    const als = new AsyncLocalStorage<number>();
    const rec = contexts(engine, als, 20);
    const s = new StepScheduler(rec.engine, { maxBatch: 4, maxBatchTokens: 16, pollMs: 1 });
    const seq = als.run(7, () => s.newSequence());
    const call = s.forward(seq, [1, 2, 3], 0);
    while (rec.steps.length === 0) await new Promise((r) => setTimeout(r, 1));
    s.releaseSequence(seq);
    await expect(call).rejects.toThrow(/released while its forward call waited/);
    await new Promise((r) => setTimeout(r, 40));
    expect(rec.released).toEqual([{ owner: 7, during: false }]);
    expect(s.batchStats).toMatchObject({ live: 0, waiting: 0 });
  });
});
