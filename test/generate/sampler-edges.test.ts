/**
 * The draws the fast paths cannot decide (they fall back to the exact path), the
 * exact path on its own, penalties, odd inputs, and a check that the comparison
 * with the reference can fail.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_SAMPLING, applyPenalties, sample, seededRandom, type SamplingOptions } from "../../src/generate/sampler";
import { drawExact } from "../../src/generate/sampler-exact";
import { topKIndices } from "../../src/generate/top-k-indices";
import * as ref from "./reference-sampler";
import { V, compareRun, drawFrom, logitsFor, thresholdsAt, type Sampler, type Shape } from "./sampler-harness";

const CARD = { temperature: 0.7, topP: 0.95 };
const PENALTIES = { repetitionPenalty: 1.2, presencePenalty: 0.5, frequencyPenalty: 0.3 };

/** The exact path alone, as the production sampler would call it when it falls back. */
const exactOnly: Sampler = (logits, opts, random, context = [], generated = []) => {
  const pen = applyPenalties(logits, opts, context, generated);
  if (opts.temperature === 0) return ref.argmax(pen);
  if (opts.topK > 0 && opts.topK < pen.length) return drawExact(pen, topKIndices(pen, opts.topK), opts.topK, opts, random());
  return drawExact(pen, null, pen.length, opts, random());
};

/** The production sampler with ties broken the other way (higher id first): must be caught. */
const flippedTies: Sampler = (logits, opts, random, context = [], generated = []) => {
  const n = logits.length;
  const rev = logits.slice().reverse();
  const flip = (t: number) => n - 1 - t;
  return flip(sample(rev, opts, random, context.map(flip), generated.map(flip)));
};

describe("sampler edges", () => {
  const hard: [Shape, Partial<SamplingOptions>][] = [
    ["flat", CARD],
    ["flat", { temperature: 0.7 }],
    ["flat", { temperature: 0.7, minP: 0.05 }],
    ["peaked", CARD],
    ["peaked", { temperature: 0.8, topP: 0.9, minP: 0.02, ...PENALTIES }],
    ["peaked", { temperature: 0.9, topK: 3000, topP: 0.9 }],
    ["long-tail", CARD],
    ["ties", CARD],
    ["ties", { temperature: 0.7 }],
  ];
  for (const [k, [shape, sampling]] of hard.entries()) {
    it(`draws at the reference's cumulative sums match (${shape}, ${JSON.stringify(sampling)})`, () => {
      const bad = compareRun({ shape, sampling, steps: 3, draws: 1, boundaries: 6, seed: 500 + k });
      expect(bad.slice(0, 5)).toEqual([]);
    });
  }

  for (const shape of ["flat", "peaked", "long-tail"] as const) {
    it(`top_p and min_p set at the distribution's own values match (${shape})`, () => {
      const rng = seededRandom(700);
      const logits = logitsFor(shape, rng, []);
      const { topP, minP } = thresholdsAt(logits, 0.7, 3, rng);
      const rs = [rng(), rng(), rng()];
      for (const [key, values] of [["topP", topP], ["minP", minP]] as const) {
        for (const x of values) {
          const opts = { ...DEFAULT_SAMPLING, temperature: 0.7, [key]: x };
          const dist = ref.warpedDistribution(logits, opts);
          for (const r of rs) expect(sample(logits, opts, () => r), `${key} ${x}, r ${r}`).toBe(drawFrom(dist, r));
        }
      }
    });
  }

  it("the exact path alone matches the reference", () => {
    for (const [k, [shape, sampling]] of [...hard, ["flat", { temperature: 0.7, topK: 40 }] as const].entries()) {
      const bad = compareRun({ shape, sampling, steps: 2, draws: 4, seed: 600 + k, sampler: exactOnly });
      expect(bad.slice(0, 5), `${shape} ${JSON.stringify(sampling)}`).toEqual([]);
    }
  });

  it("seeded sequences equal the reference's sample(), token for token", () => {
    for (const [shape, sampling] of [["peaked", CARD], ["flat", { ...CARD, ...PENALTIES }]] as const) {
      const opts = { ...DEFAULT_SAMPLING, ...sampling };
      const data = seededRandom(7);
      const a = seededRandom(42);
      const b = seededRandom(42);
      const context: number[] = [1, 2, 3];
      const generated: number[] = [];
      for (let step = 0; step < 10; step++) {
        const logits = logitsFor(shape, data, context);
        const want = ref.sample(logits, opts, a, context, generated);
        expect(sample(logits, opts, b, context, generated), `${shape} step ${step}`).toBe(want);
        context.push(want);
        generated.push(want);
      }
    }
  });

  it("the comparison catches a sampler that breaks ties the other way", () => {
    const bad = compareRun({ shape: "ties", sampling: { temperature: 0.7, topK: 40 }, steps: 30, draws: 1, seed: 9, sampler: flippedTies });
    expect(bad.length).toBeGreaterThan(0);
  });

  it("small vocabularies (exact path) and mid-sized ones match", () => {
    for (const n of [4, 300, 2048, 5000]) {
      const rng = seededRandom(n);
      for (const sampling of [CARD, { temperature: 1 }, { temperature: 0.7, topK: 10, minP: 0.1 }, { temperature: 1.3, minP: 0.05, ...PENALTIES }]) {
        const opts = { ...DEFAULT_SAMPLING, ...sampling };
        for (let step = 0; step < 20; step++) {
          const logits = Float32Array.from({ length: n }, () => (rng() - 0.5) * 6);
          const context = [0, 1, 1, n - 1];
          const r = rng();
          expect(sample(logits, opts, () => r, context, context), `n=${n} ${JSON.stringify(sampling)}`).toBe(ref.sample(logits, opts, () => r, context, context));
        }
      }
    }
  });

  it("penalties: the same float32 values as the reference, duplicates and ids out of range included", () => {
    const rng = seededRandom(3);
    const logits = Float32Array.from({ length: 1000 }, () => (rng() - 0.5) * 10);
    const context = [5, 5, 7, 999, 7, 1000, -1, 2.5, 12];
    const generated = [7, 7, 12, 5, 1000];
    for (const opts of [
      { ...DEFAULT_SAMPLING, repetitionPenalty: 1.3 },
      { ...DEFAULT_SAMPLING, presencePenalty: 0.4, frequencyPenalty: -0.7 },
      { ...DEFAULT_SAMPLING, ...PENALTIES },
      { ...DEFAULT_SAMPLING, repetitionPenalty: 0.8, presencePenalty: -1 },
    ]) {
      expect(Array.from(applyPenalties(logits, opts, context, generated))).toEqual(Array.from(ref.applyPenalties(logits, opts, context, generated)));
    }
  });

  it("NaN and infinite logits take the exact path and draw as the reference does", () => {
    const rng = seededRandom(11);
    const base = Float32Array.from({ length: V }, () => (rng() - 0.5) * 4);
    const withNaN = base.slice();
    withNaN[17] = NaN;
    const withInf = base.slice();
    withInf[23] = Infinity;
    const masked = base.slice().fill(-Infinity, 0, V - 10);
    const untruncated = { ...DEFAULT_SAMPLING, temperature: 0.7 };
    for (const logits of [withNaN, withInf, masked]) {
      for (const r of [0, 0.3, 0.999]) expect(sample(logits, untruncated, () => r)).toBe(ref.sample(logits, untruncated, () => r));
    }
    for (const r of [0, 0.5, 0.99]) expect(sample(masked, { ...DEFAULT_SAMPLING, ...CARD }, () => r)).toBe(ref.sample(masked, { ...DEFAULT_SAMPLING, ...CARD }, () => r));
  });

  it("min_p = 1 keeps the top token (where the reference could round every token out and throw)", () => {
    const rng = seededRandom(5);
    for (let step = 0; step < 20; step++) {
      const logits = Float32Array.from({ length: V }, () => (rng() - 0.5) * 4);
      logits[1234] = 3;
      expect(sample(logits, { ...DEFAULT_SAMPLING, temperature: 0.7, minP: 1 }, rng)).toBe(1234);
    }
  });
});
