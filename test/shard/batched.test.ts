/**
 * Batched steps over shards in Node: ShardedEngine.forwardBatch sends one frame per shard for
 * several sequences, and every sequence gets the single-isolate engine's logits bit for bit; a
 * shard that lost one sequence of a batch makes the coordinator re-run that sequence alone; a
 * batch beyond a shard's KV budget is a clear error that leaves the held sequences intact.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { WasmEngine } from "../../src/engine/index";
import { decodeFrame, encodeFrame, type ShardReply } from "../../src/shard/protocol";
import type { ShardPlan } from "../../src/shard/plan";
import type { LocalShards } from "../../src/shard/node";
import { tinyShards } from "./local-tiny";
import { ShardedEngine, type ShardLink, type ShardedSequence } from "../../src/shard/engine";

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

let single: WasmEngine;
let plan: ShardPlan;
let shards: LocalShards;

beforeAll(async () => {
  // 19 MiB: one layer shard and six head slices; KV for 2 × 256 positions (32 blocks of 16).
  ({ single, plan, shards } = await tinyShards(2, 4));
});

const prompts = [
  [9906, 11, 358, 1097, 264, 1296, 13],
  [5, 6, 7],
  [300, 200, 100, 50, 25, 12],
];

describe("ShardedEngine.forwardBatch", () => {
  it("prompts of different lengths and then decode steps, one frame per shard per step: each sequence's logits are the single engine's, bit for bit", async () => {
    const e = shards.engine;
    const a = prompts.map(() => single.newSequence());
    const b = prompts.map(() => e.newSequence());
    const frames0 = e.stats.frames;
    const steps0 = e.stats.steps;
    const got = await e.forwardBatch(prompts.map((p, i) => ({ seq: b[i], tokens: p, startPos: 0, allLogits: i === 0 })));
    expect(e.stats.frames - frames0).toBe(plan.shards.length);
    prompts.forEach((p, i) => {
      const want = single.forward(a[i], p, 0, { allLogits: i === 0 });
      expect(got[i].length).toBe(want.length);
      want.forEach((w, k) => expect(same(got[i][k], w), `sequence ${i} row ${k}`).toBe(true));
    });
    for (let step = 0; step < 3; step++) {
      const tokens = prompts.map((_, i) => 1000 + 37 * i + step);
      const out = await e.forwardBatch(tokens.map((t, i) => ({ seq: b[i], tokens: [t], startPos: prompts[i].length + step })));
      tokens.forEach((t, i) => expect(same(out[i][0], single.forward(a[i], [t], prompts[i].length + step)[0]), `step ${step} sequence ${i}`).toBe(true));
    }
    expect(e.stats.steps - steps0).toBe(4);
    expect(e.stats.frames - frames0).toBe(4 * plan.shards.length);
  });

  it("a shard that lost one sequence of the batch: only that one is re-run from position 0, the others go on, every logit is the same", async () => {
    const e = shards.engine;
    const a = prompts.map(() => single.newSequence());
    const b = prompts.map(() => e.newSequence());
    await e.forwardBatch(prompts.map((p, i) => ({ seq: b[i], tokens: p, startPos: 0 })));
    prompts.forEach((p, i) => single.forward(a[i], p, 0));
    const layer = shards.runtimes.find((r) => r.spec.kind === "layers")!;
    expect(decodeFrame<ShardReply>(layer.handle(encodeFrame({ op: "drop", seq: b[1].id }))).head.ok).toBe(true);

    // What the shard answers for a batch that holds the lost sequence: that part unknown, the others run.
    const H = plan.model.config.hiddenSize;
    const probe = decodeFrame<ShardReply>(
      layer.handle(encodeFrame({ op: "run", parts: [{ seq: "probe-x", pos: 0, n: 1 }, { seq: b[1].id, pos: 3, n: 1 }] }, new Float32Array(2 * H).fill(0.5))),
    );
    expect(probe.head).toEqual({ ok: true, parts: [{ seq: "probe-x", ok: true }, { seq: b[1].id, ok: false, unknown: true, have: 0 }] });
    expect(probe.payload.length).toBe(H);

    const recoveries = e.stats.recoveries;
    const frames = e.stats.frames;
    const out = await e.forwardBatch(prompts.map((p, i) => ({ seq: b[i], tokens: [77 + i], startPos: p.length })));
    expect(e.stats.recoveries - recoveries).toBe(1);
    // The step's frames, plus one more run frame to the layer shard carrying the lost sequence alone.
    expect(e.stats.frames - frames).toBe(plan.shards.length + 1);
    prompts.forEach((p, i) => expect(same(out[i][0], single.forward(a[i], [77 + i], p.length)[0]), `sequence ${i}`).toBe(true));
    expect(layer.info().sequences).toContain(b[1].id);
  });

  it("a batch larger than a shard's KV budget is a clear error; the sequences it held are not corrupted", async () => {
    const e = shards.engine;
    const [s1, s2] = [e.newSequence(), e.newSequence()];
    const long = Array.from({ length: 200 }, (_, i) => (i * 7) % 500);
    const w = single.newSequence();
    // Two sequences of 200 positions: 26 of the shard's 32 blocks.
    await e.forwardBatch([{ seq: s1, tokens: long, startPos: 0 }, { seq: s2, tokens: long.slice(0, 10), startPos: 0 }]);
    single.forward(w, long, 0);
    // Three more of 200 at once need 39 blocks in one step: more than the pool holds.
    const more = [e.newSequence(), e.newSequence(), e.newSequence()];
    const recoveries = e.stats.recoveries;
    const err = await e.forwardBatch(more.map((s) => ({ seq: s, tokens: long, startPos: 0 }))).catch((x) => x);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/shard 0: the KV cache is too small for this step: its 3 sequences need 39 blocks of 16 positions and the pool has 32/);
    // Refused before anyone was evicted for it: s1 still holds its 200 positions and decodes to the single engine's logits without a re-run.
    const [x] = await e.forward(s1, [42], 200);
    expect(same(x, single.forward(w, [42], 200)[0])).toBe(true);
    expect(e.stats.recoveries).toBe(recoveries);
  });

  it("refuses a bad batch before any frame: the same sequence twice, a foreign sequence, a position past what was fed", async () => {
    const e = shards.engine;
    const s = e.newSequence();
    const frames = e.stats.frames;
    await expect(e.forwardBatch([{ seq: s, tokens: [1] }, { seq: s, tokens: [2] }])).rejects.toThrow(/batch entry 1: the same sequence twice in one step/);
    await expect(e.forwardBatch([{ seq: s, tokens: [1] }, { seq: {}, tokens: [2] }])).rejects.toThrow(/batch entry 1: not a sequence of this engine/);
    await expect(e.forwardBatch([{ seq: s, tokens: [1], startPos: 3 }])).rejects.toThrow(/startPos 3 is past the 0 positions fed/);
    expect(e.stats.frames).toBe(frames);
  });
});

describe("whose request a step's I/O belongs to", () => {
  it("every frame of a step goes on the driver's sessions; each caller's prepare reads its own embedding rows, so the step reads none", async () => {
    const scopes: string[] = [];
    const links: ShardLink[] = (shards.links as ShardLink[]).map((l) => ({ call: (f, scope) => (scopes.push(scope), l.call(f, scope)), close: (scope) => l.close(scope), invocations: 0 }));
    const e = new ShardedEngine(plan, links, shards.embedding);
    const [a, b] = [e.newSequence(), e.newSequence()] as ShardedSequence[];
    const wantA = single.newSequence();
    const wantB = single.newSequence();
    // Tokens no other test here has read: their rows are not cached yet.
    const [ta, tb] = [[901, 902, 903], [1901, 1902]];
    const reads = shards.embedding.reads;
    await e.prepare(a, ta);
    await e.prepare(b, tb);
    const prepared = shards.embedding.reads;
    expect(prepared).toBeGreaterThan(reads);
    const [[xa], [xb]] = await e.forwardBatch([{ seq: a, tokens: ta, startPos: 0 }, { seq: b, tokens: tb, startPos: 0 }], { driver: b });
    expect(shards.embedding.reads).toBe(prepared);
    expect(scopes.length).toBe(plan.shards.length);
    expect(new Set(scopes)).toEqual(new Set([b.id]));
    expect(same(xa, single.forward(wantA, ta, 0)[0])).toBe(true);
    expect(same(xb, single.forward(wantB, tb, 0)[0])).toBe(true);
    // Without a driver named (a caller alone, Node): the first entry's.
    scopes.length = 0;
    await e.forwardBatch([{ seq: a, tokens: [7], startPos: 3 }]);
    expect(new Set(scopes)).toEqual(new Set([a.id]));
  });

  it("a released sequence's sessions are dropped on every link (its request drives no more)", () => {
    const forgotten: string[][] = plan.shards.map(() => []);
    const links: ShardLink[] = (shards.links as ShardLink[]).map((l, i) => ({ call: (f, scope) => l.call(f, scope), close: (scope) => l.close(scope), forget: (scope) => void forgotten[i].push(scope), invocations: 0 }));
    const e = new ShardedEngine(plan, links, shards.embedding);
    const [a, b] = [e.newSequence(), e.newSequence()];
    e.releaseSequence(a);
    expect(forgotten).toEqual(plan.shards.map(() => [a.id]));
    e.releaseSequence(b);
    expect(forgotten.every((f) => f.at(-1) === b.id)).toBe(true);
  });
});
