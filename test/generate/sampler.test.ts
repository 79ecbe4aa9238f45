import { describe, expect, it } from "vitest";
import { DEFAULT_SAMPLING, applyPenalties, argmax, sample, seededRandom, type SamplingOptions } from "../../src/generate/sampler";
import { warpedDistribution } from "./reference-sampler";

/** HF's warpers written the obvious way: full sort, then each cut in turn. */
function naive(logits: Float32Array, o: SamplingOptions): Map<number, number> {
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const kept = o.topK > 0 ? order.slice(0, o.topK) : order;
  const max = logits[kept[0]];
  let probs = kept.map((t) => Math.exp((logits[t] - max) / o.temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  let n = kept.length;
  if (o.topP < 1) {
    let mass = 0;
    let k = 0;
    while (k < n && mass < o.topP) mass += probs[k++];
    n = Math.max(1, k);
  }
  if (o.minP > 0) {
    let k = 1;
    while (k < n && probs[k] >= o.minP * probs[0]) k++;
    n = k;
  }
  sum = probs.slice(0, n).reduce((a, b) => a + b, 0);
  return new Map(kept.slice(0, n).map((t, i) => [t, probs[i] / sum]));
}

function randomLogits(n: number, seed: number, scale: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() - 0.5) * scale);
}

describe("sampler", () => {
  it("argmax is the first index of the largest entry, for typed arrays and plain ones", () => {
    // The reference: a plain scan that re-reads the best entry each time.
    const naive = (x: ArrayLike<number>) => {
      let b = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
      return b;
    };
    const rand = seededRandom(11);
    const cases: ArrayLike<number>[] = [
      [],
      [3],
      [1, 5, 5, 2],
      new Float32Array([-3, -1, -1, -2]),
      new Float32Array([NaN, 2, 7, 7]),
      [2, NaN, 9, NaN, 9],
      new Float32Array([-Infinity, -Infinity]),
      Float32Array.from({ length: 100352 }, () => Math.fround(rand() * 8 - 4)),
      Array.from({ length: 5000 }, (_, i) => (i * 7919) % 4093),
    ];
    for (const x of cases) expect(argmax(x)).toBe(naive(x));
    expect(argmax(new Float32Array([1, 5, 5, 2]))).toBe(1);
    expect(argmax([NaN, 2, 7, 7])).toBe(0); // NaN first: nothing compares above it
  });

  it("warpedDistribution equals the naive HF order (temperature → top-k → top-p → min-p)", () => {
    const combos: Partial<SamplingOptions>[] = [
      { temperature: 0.7, topP: 0.95, topK: 50 },
      { temperature: 1, topP: 0.9 },
      { temperature: 0.5, topP: 1, topK: 10 },
      { temperature: 1.3, minP: 0.05 },
      { temperature: 0.7, topP: 0.8, minP: 0.1 },
      { temperature: 1, topP: 0.999 },
      { temperature: 2, topK: 1 },
    ];
    for (const [i, c] of combos.entries()) {
      for (const scale of [2, 20]) {
        const logits = randomLogits(5000, i * 7 + scale, scale);
        const opts = { ...DEFAULT_SAMPLING, ...c };
        const want = naive(logits, opts);
        const got = warpedDistribution(logits, opts);
        expect(got.length, JSON.stringify(c)).toBe(want.size);
        for (const { token, p } of got) expect(p).toBeCloseTo(want.get(token)!, 12);
      }
    }
  });

  it("without truncation the distribution is the plain softmax", () => {
    const logits = randomLogits(1000, 3, 5);
    const d = warpedDistribution(logits, { ...DEFAULT_SAMPLING, temperature: 1 });
    expect(d).toHaveLength(1000);
    expect(d.reduce((a, b) => a + b.p, 0)).toBeCloseTo(1, 12);
  });

  it("draws in proportion to the distribution and is reproducible by seed", () => {
    const logits = Float32Array.from([0, Math.log(3), -Infinity, Math.log(6)]);
    const opts = { ...DEFAULT_SAMPLING, temperature: 1 };
    const r = seededRandom(42);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sample(logits, opts, r)]++;
    expect(counts[2]).toBe(0);
    expect(counts[0] / 20000).toBeCloseTo(0.1, 1);
    expect(counts[3] / 20000).toBeCloseTo(0.6, 1);
    const draws = (seed: number) => {
      const rng = seededRandom(seed);
      return Array.from({ length: 20 }, () => sample(logits, opts, rng));
    };
    expect(draws(1)).toEqual(draws(1));
    expect(draws(1)).not.toEqual(draws(2));
  });

  it("temperature 0 is argmax after penalties; penalties follow HF and OpenAI", () => {
    const logits = Float32Array.from([2, 1, -1, 0.5]);
    expect(sample(logits, { ...DEFAULT_SAMPLING, temperature: 0 }, Math.random)).toBe(0);
    const rep = applyPenalties(logits, { ...DEFAULT_SAMPLING, repetitionPenalty: 2 }, [0, 2, 2], []);
    expect(Array.from(rep)).toEqual([1, 1, -2, 0.5]);
    const freq = applyPenalties(logits, { ...DEFAULT_SAMPLING, presencePenalty: 0.5, frequencyPenalty: 0.25 }, [], [1, 1, 3]);
    expect(Array.from(freq)).toEqual([2, 1 - 0.5 - 0.5, -1, 0.5 - 0.5 - 0.25]);
    expect(argmax(freq)).toBe(0);
  });
});
