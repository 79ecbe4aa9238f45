/**
 * The paged KV cache's prefix reuse (src/engine/kv-cache.ts): a sequence that
 * starts with cached blocks computes only the rest, and gets the same logits
 * as one that computed everything; shared blocks are copied before they are
 * written; cached blocks nobody holds give way when the pool needs them; a
 * full pool refuses rather than corrupt a sequence of the step.
 */
import { describe, expect, it } from "vitest";
import { KVBudgetError, SequenceEvictedError, type WasmEngine } from "../../src/engine/index";
import { synthGGUF } from "../../weights-tools/fixtures";
import { BUILDS, engineFor, randomTokens, sameBits } from "./helpers";

const P = 16;
const SYSTEM = randomTokens(40, 250, 11); // 2 full blocks and 8 positions
const turn = (seed: number, n = 7) => randomTokens(n, 250, seed);
const argmax = (x: Float32Array) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);

/** Logits of prompt then `steps` greedy tokens, fed in one go from position `from` after reusing what the engine offers. */
function run(e: WasmEngine, prompt: number[], steps: number, reuse = true): { cached: number; logits: Float32Array[]; seq: ReturnType<WasmEngine["newSequence"]> } {
  const seq = e.newSequence();
  const cached = reuse ? e.reusePrefix(seq, prompt) : 0;
  const logits = [e.forward(seq, prompt.slice(cached), cached)[0]];
  for (let i = 0; i < steps; i++) logits.push(e.forward(seq, [argmax(logits.at(-1)!)])[0]);
  return { cached, logits, seq };
}

const same = (a: Float32Array[], b: Float32Array[]) => a.map((x, i) => sameBits(x, b[i])).filter((d) => d !== "same");

describe.each(BUILDS)("prefix reuse (%s kernels)", (build) => {
  it("a second request with the same start reuses its full blocks and gets the same logits as computing everything", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    const fresh = await engineFor(path, build, { contextLength: 128, sequences: 4, blockPositions: P });
    const e = await engineFor(path, build, { contextLength: 128, sequences: 4, blockPositions: P });
    const first = [...SYSTEM, ...turn(1)];
    const a = run(e, first, 4);
    expect(a.cached).toBe(0);
    a.seq.release();
    expect(e.pool.stats).toMatchObject({ cached: 3, used: 0 }); // 51 positions: three full blocks

    // The same system prompt, another user turn: 32 positions come from the cache.
    const second = [...SYSTEM, ...turn(2)];
    const b = run(e, second, 4);
    expect(b.cached).toBe(32);
    expect(same(b.logits, run(fresh, second, 4, false).logits)).toEqual([]);
    expect(e.pool.stats).toMatchObject({ reusedPositions: 32, prefixHits: 1 });

    // A chat's next turn: the whole previous conversation is its prefix (its full blocks).
    const convo = [...second, ...b.logits.slice(0, 4).map(argmax), ...turn(3)];
    b.seq.release();
    const c = run(e, convo, 2);
    expect(c.cached).toBe(Math.floor((second.length + 3) / P) * P);
    expect(same(c.logits, run(fresh, convo, 2, false).logits)).toEqual([]);

    // A prompt that is exactly cached blocks still computes its last position; one that differs in block 0 reuses nothing.
    expect(run(e, SYSTEM.slice(0, 32), 0).cached).toBe(16);
    expect(run(e, [SYSTEM[0] + 1, ...SYSTEM.slice(1)], 0).cached).toBe(0);
  });

  it("a shared block is copied before it is written: rewinding one sharer leaves the other's cache intact", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    const e = await engineFor(path, build, { contextLength: 128, sequences: 4, blockPositions: P });
    const fresh = await engineFor(path, build, { contextLength: 128, sequences: 4, blockPositions: P });
    const prompt = [...SYSTEM, ...turn(4)];
    run(e, prompt, 0).seq.release();
    const x = run(e, prompt, 0);
    const y = run(e, prompt, 0);
    expect([x.cached, y.cached]).toEqual([32, 32]);
    expect(x.seq.blocks.slice(0, 2)).toEqual(y.seq.blocks.slice(0, 2));
    // x rewinds into block 0 with other tokens.
    const other = turn(5, 10);
    e.forward(x.seq, other, 5);
    expect(x.seq.blocks[0]).not.toBe(y.seq.blocks[0]);
    expect(x.seq.blocks[1]).toBe(y.seq.blocks[1]); // still shared: x has not written there since
    const yNext = e.forward(y.seq, [7])[0];
    expect(sameBits(yNext, fresh.forward(fresh.newSequence(), [...prompt, 7])[0])).toBe("same");
    const xNext = e.forward(x.seq, [7])[0];
    expect(sameBits(xNext, fresh.forward(fresh.newSequence(), [...prompt.slice(0, 5), ...other, 7])[0])).toBe("same");
  });

  it("cached blocks nobody holds give way when the pool needs them; a full pool refuses and changes nothing", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    // 4 blocks of 16.
    const e = await engineFor(path, build, { contextLength: 64, sequences: 1, blockPositions: P });
    const a = run(e, [...SYSTEM], 0);
    a.seq.release();
    expect(e.pool.stats).toMatchObject({ cached: 2, free: 2 });
    const b = e.newSequence();
    e.forward(b, turn(6, 60)); // 4 blocks: the two cached ones are taken back
    expect(e.pool.stats).toMatchObject({ cached: 0, free: 0, used: 4 });
    expect(run(e, [...SYSTEM], 0).cached).toBe(0); // and their prefix is gone (b was evicted to make room)
    expect(() => e.forward(b, [1])).toThrow(SequenceEvictedError);
    const c = e.newSequence();
    const d = e.newSequence();
    expect(() => e.forwardBatch([{ seq: c, tokens: turn(7, 33) }, { seq: d, tokens: turn(8, 33) }])).toThrow(KVBudgetError);
    expect([c.length(), d.length()]).toEqual([0, 0]);
  });
});
