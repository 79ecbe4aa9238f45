/**
 * forward's logits belong to the caller: the generation loop keeps a step's
 * logits (for logprobs, or the bench's argmax) while the next step runs, and
 * a batched step hands each sequence its own. The engine computes them in one
 * buffer in WASM memory that every step rewrites, so a result that were a
 * view of it (a tempting way to save the copy) would change under the caller.
 */
import { describe, expect, it } from "vitest";
import { synthGGUF } from "../../weights-tools/fixtures";
import { engineFor, randomTokens, sameBits } from "./helpers";

describe("forward's logits outlive the next step", () => {
  it("a decode step's logits are unchanged by the steps after it, alone and batched", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), "simd", { prefillChunk: 16 });
    const prompt = randomTokens(8, 100256, 5);
    const a = e.newSequence();
    const b = e.newSequence();
    const first = e.forward(a, prompt)[0];
    const kept = first.slice();
    const second = e.forward(a, [17], prompt.length)[0];
    expect(sameBits(second, kept)).not.toBe("same"); // the step wrote different logits
    expect(sameBits(first, kept)).toBe("same");

    e.forward(b, prompt);
    const [[ra], [rb]] = e.forwardBatch([
      { seq: a, tokens: [23], startPos: prompt.length + 1 },
      { seq: b, tokens: [42], startPos: prompt.length },
    ]);
    const keptA = ra.slice();
    const keptB = rb.slice();
    expect(sameBits(ra, rb)).not.toBe("same");
    e.forwardBatch([
      { seq: a, tokens: [7], startPos: prompt.length + 2 },
      { seq: b, tokens: [9], startPos: prompt.length + 1 },
    ]);
    expect(sameBits(ra, keptA)).toBe("same");
    expect(sameBits(rb, keptB)).toBe("same");
    expect(sameBits(first, kept)).toBe("same");
    await e.close();
  });

  it("a caller's own array (into) is filled and returned with the bits of a new one; allLogits or another length get new arrays", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), "simd", { prefillChunk: 16 });
    const V = e.config.vocabSize;
    const prompt = randomTokens(20, V - 96, 9); // longer than a chunk: the last row is in the second
    const ref = e.forward(e.newSequence(), prompt)[0];
    const a = e.newSequence();
    const into = new Float32Array(V).fill(Number.NaN);
    const got = e.forward(a, prompt, 0, { into })[0];
    expect(got).toBe(into);
    expect(sameBits(into, ref)).toBe("same");

    // Batched: each entry its own array, an entry without one a new array.
    const b = e.newSequence();
    const c = e.newSequence();
    e.forward(b, prompt);
    e.forward(c, prompt);
    const intoB = new Float32Array(V);
    const [[ra], [rb], [rc]] = e.forwardBatch([
      { seq: a, tokens: [5], startPos: prompt.length, into },
      { seq: b, tokens: [6], startPos: prompt.length, into: intoB },
      { seq: c, tokens: [5], startPos: prompt.length },
    ]);
    expect(ra).toBe(into);
    expect(rb).toBe(intoB);
    expect(rc).not.toBe(into);
    expect(sameBits(ra, rc)).toBe("same"); // the same history and token
    expect(sameBits(ra, rb)).not.toBe("same");

    // Not used where it cannot hold what is asked.
    const all = e.forward(e.newSequence(), prompt.slice(0, 3), 0, { allLogits: true, into });
    expect(all.length).toBe(3);
    for (const l of all) expect(l).not.toBe(into);
    const short = new Float32Array(V - 1);
    expect(e.forward(e.newSequence(), prompt.slice(0, 3), 0, { into: short })[0]).not.toBe(short);
    await e.close();
  });
});
