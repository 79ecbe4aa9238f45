import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/generate/sampler";
import { loadReferenceModel } from "../../src/model/node";
import { synthGGUF } from "../../weights-tools/fixtures";

function randomTokens(n: number, vocab: number, seed: number): number[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

describe("reference forward pass: internal consistency", async () => {
  const { model } = await loadReferenceModel(await synthGGUF("tiny", "f32"));
  const { vocabSize, hiddenSize: H, numLayers } = model.config;
  const tokens = randomTokens(12, vocabSize, 3);

  it("reads the tiny config from GGUF metadata", () => {
    expect(model.config).toMatchObject({ hiddenSize: 64, numLayers: 2, numHeads: 4, numKVHeads: 4, headDim: 16, rotaryDim: 4, parallelResidual: false, qkNorm: false, vocabSize: 100352 });
  });

  it("prefill in one call equals token-by-token decode, bit for bit", () => {
    const all = model.forward(model.newSequence(), tokens, 0, { allLogits: true });
    const seq = model.newSequence();
    tokens.forEach((t, i) => expect(model.forward(seq, [t], i)[0]).toEqual(all[i]));
    expect(seq.length()).toBe(tokens.length);
  });

  it("forwardLayers over two layer ranges equals the whole stack", () => {
    const whole = model.forward(model.newSequence(), tokens)[0];
    const seqA = model.newSequence();
    const hidden = new Float64Array(tokens.length * H);
    tokens.forEach((t, i) => hidden.set(model.embed(t), i * H));
    for (let l = 0; l < numLayers; l++) model.forwardLayers(seqA, 0, hidden, l, l + 1);
    expect(model.logits(hidden.subarray((tokens.length - 1) * H))).toEqual(whole);
  });

  it("rewinding the cache and feeding a different suffix equals a fresh run", () => {
    const seq = model.newSequence();
    model.forward(seq, tokens);
    const other = [...tokens.slice(0, 5), ...randomTokens(4, vocabSize, 9)];
    const rewound = model.forward(seq, other.slice(5), 5)[0];
    expect(rewound).toEqual(model.forward(model.newSequence(), other)[0]);
    seq.truncate(2);
    expect(seq.length()).toBe(2);
  });

  it("position matters (rotary is applied) and the output is finite and non-trivial", () => {
    const a = model.forward(model.newSequence(), [tokens[0], tokens[1]])[0];
    const b = model.forward(model.newSequence(), [tokens[1], tokens[1]])[0];
    expect(a.every(Number.isFinite)).toBe(true);
    expect(a).not.toEqual(b);
  });

  it("rejects bad input with clear errors", () => {
    expect(() => model.forward(model.newSequence(), [vocabSize])).toThrow(/outside the vocabulary/);
    expect(() => model.forward(model.newSequence(), [-1])).toThrow(/outside the vocabulary/);
    expect(() => model.forward(model.newSequence(), [1], 5)).toThrow(/cannot start at 5/);
    expect(() => model.forwardLayers(model.newSequence(), 0, new Float64Array(H + 1), 0, 1)).toThrow(/multiple of/);
  });
});

describe("reference forward pass: the 12B layout", async () => {
  const { model } = await loadReferenceModel(await synthGGUF("tiny-parallel", "f32"));
  it("detects parallel residual, qk-norm and GQA from the tensors", () => {
    expect(model.config).toMatchObject({ parallelResidual: true, qkNorm: true, numHeads: 4, numKVHeads: 2 });
    expect(model.weights.layers[0].ffnNorm).toBeUndefined();
    expect(model.weights.layers[0].qBias).toBeUndefined();
  });
});
