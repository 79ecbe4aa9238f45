/**
 * Round trips through our quantizers for Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K
 * and Q5_K and the dequantizers (which were checked bit for bit against
 * gguf-py), with an error bound per element stated from the format alone:
 * half a step of the (sub-)block's scale, plus what rounding the scales onto
 * their f16 and integer grids adds; one step on the clamped side of the
 * symmetric types (Q5_0, Q3_K), whose grid has one more level below zero
 * than above.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/generate/sampler";
import { dequantize, quantize } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";

/** f16 scales are rounded up by at most one f16 step: a relative 2^-10 for normal values. */
const F16 = 1 + 2 ** -10;
/** Slack for f32 arithmetic in the (de)quantizer, relative to the block's magnitude. */
const ARITH = 2 ** -20;

function gaussian(n: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

/** Inputs that stress the scale rules, each a whole number of 256-element blocks. */
function adversarial(): Record<string, Float32Array> {
  const cases: Record<string, Float32Array> = {
    zeros: new Float32Array(256),
    "all equal, positive": new Float32Array(256).fill(0.37),
    "all equal, negative": new Float32Array(256).fill(-1.25),
    "negative only": gaussian(512, 3).map((v) => -Math.abs(v) - 0.5),
    "positive only": gaussian(512, 4).map((v) => Math.abs(v) + 0.01),
  };
  const outlier = gaussian(512, 5).map((v) => v * 0.01);
  outlier[77] = 40;
  outlier[300] = -25;
  cases["one outlier per block"] = outlier;
  // Sub-blocks of very different ranges: the small ones are at the mercy of the 4- or 6-bit scale grid.
  const mixed = gaussian(512, 6);
  for (let i = 0; i < 512; i++) mixed[i] *= (i >> 4) % 3 === 0 ? 8 : (i >> 4) % 3 === 1 ? 0.001 : 1;
  cases["mixed sub-block ranges"] = mixed;
  cases["random, 8 blocks"] = gaussian(2048, 7);
  return cases;
}

function minMax(x: Float32Array, start: number, n: number): [number, number, number] {
  let lo = Infinity, hi = -Infinity, amax = 0;
  for (let i = start; i < start + n; i++) {
    lo = Math.min(lo, x[i]);
    hi = Math.max(hi, x[i]);
    amax = Math.max(amax, Math.abs(x[i]));
  }
  return [lo, hi, amax];
}

function signedMax(x: Float32Array, start: number, n: number): number {
  let m = 0;
  for (let i = start; i < start + n; i++) if (Math.abs(x[i]) > Math.abs(m)) m = x[i];
  return m;
}

/** Per-element bound for the affine 32-blocks (Q4_1 with 15 steps, Q5_1 with 31): m sits at most one f16 step below the min. */
function affineBound(levels: number) {
  return (x: Float32Array): Float64Array => {
    const out = new Float64Array(x.length);
    for (let b = 0; b < x.length; b += 32) {
      const [lo, hi, amax] = minMax(x, b, 32);
      const step = ((hi - lo + Math.abs(lo) * 2 ** -10) / levels) * F16;
      out.fill(step / 2 + amax * ARITH + 2 ** -24, b, b + 32);
    }
    return out;
  };
}

/** Symmetric blocks of n (Q5_0: 16 steps each side; Q3_K: 4): the signed max lands exactly; the other side clamps one level early. */
function symmetricBound(n: number, half: number, scaleGrid?: { subs: number; max: number }) {
  return (x: Float32Array): Float64Array => {
    const out = new Float64Array(x.length);
    const group = scaleGrid ? 256 : n;
    for (let g = 0; g < x.length; g += group) {
      // Q3_K's sub-block scales sit on a grid of max|scale|/31, rounded away from zero.
      let gridStep = 0;
      if (scaleGrid) for (let s = 0; s < scaleGrid.subs; s++) gridStep = Math.max(gridStep, (Math.abs(signedMax(x, g + s * n, n)) / half / scaleGrid.max) * F16);
      for (let b = g; b < g + group; b += n) {
        const max = signedMax(x, b, n);
        const step = (Math.abs(max) / half) * (scaleGrid ? 1 : F16) + gridStep;
        for (let i = b; i < b + n; i++) {
          const sameSide = x[i] === 0 || Math.sign(x[i]) === Math.sign(max);
          out[i] = (sameSide ? step / 2 : step) + Math.abs(max) * ARITH + 2 ** -24;
        }
      }
    }
    return out;
  };
}

/**
 * Scale-and-min K-quants: each sub-block's min (never above 0) is on a grid of
 * max|min|/scaleMax, and its step on a grid of max(span)/levels/scaleMax,
 * both rounded up; so a step is at most the sub-block's span over `levels`
 * plus one grid step.
 */
function scaleMinBound(subs: number, levels: number, scaleMax: number) {
  const n = 256 / subs;
  return (x: Float32Array): Float64Array => {
    const out = new Float64Array(x.length);
    for (let b = 0; b < x.length; b += 256) {
      const lo: number[] = [], hi: number[] = [], amax: number[] = [];
      for (let s = 0; s < subs; s++) {
        const [l, h, a] = minMax(x, b + s * n, n);
        lo.push(Math.min(l, 0));
        hi.push(h);
        amax.push(a);
      }
      const minGrid = (Math.max(...lo.map((v) => -v)) / scaleMax) * F16;
      const span = lo.map((l, s) => hi[s] - l + minGrid);
      const grid = (Math.max(...span) / levels / scaleMax) * F16;
      for (let s = 0; s < subs; s++) out.fill((span[s] / levels + grid) / 2 + Math.max(...amax) * ARITH + 2 ** -24, b + s * n, b + (s + 1) * n);
    }
    return out;
  };
}

const TYPES: { type: TensorType; name: string; bits: number; bound: (x: Float32Array) => Float64Array }[] = [
  { type: TensorType.Q4_1, name: "Q4_1", bits: 5, bound: affineBound(15) },
  { type: TensorType.Q5_0, name: "Q5_0", bits: 5.5, bound: symmetricBound(32, 16) },
  { type: TensorType.Q5_1, name: "Q5_1", bits: 6, bound: affineBound(31) },
  { type: TensorType.Q2_K, name: "Q2_K", bits: 2.625, bound: scaleMinBound(16, 3, 15) },
  { type: TensorType.Q3_K, name: "Q3_K", bits: 3.4375, bound: symmetricBound(16, 4, { subs: 16, max: 31 }) },
  { type: TensorType.Q4_K, name: "Q4_K", bits: 4.5, bound: scaleMinBound(8, 15, 63) },
  { type: TensorType.Q5_K, name: "Q5_K", bits: 5.5, bound: scaleMinBound(8, 31, 63) },
];

describe("quantizers for the published block types: round trip within the format's bound", () => {
  const inputs = adversarial();
  for (const { type, name, bits, bound } of TYPES) {
    it(`${name}: ${bits} bits per weight; every element within its bound on random and adversarial inputs`, () => {
      expect(quantize(type, new Float32Array(256)).byteLength * 8).toBe(bits * 256);
      for (const [what, x] of Object.entries(inputs)) {
        const y = dequantize(type, quantize(type, x), x.length);
        const b = bound(x);
        let worst = 0;
        for (let i = 0; i < x.length; i++) {
          const err = Math.abs(y[i] - x[i]);
          if (!(err <= b[i])) throw new Error(`${name}, ${what}: element ${i} is ${x[i]}, decodes to ${y[i]} (error ${err}, bound ${b[i]})`);
          worst = Math.max(worst, err / b[i]);
        }
        // The bound is tight enough to mean something: random data comes close to it.
        if (what === "random, 8 blocks") expect(worst).toBeGreaterThan(0.5);
      }
    });
  }

  it("zeros and constant blocks decode exactly where the format can hold them", () => {
    for (const { type } of TYPES) {
      expect(Array.from(dequantize(type, quantize(type, new Float32Array(256)), 256)).every((v) => v === 0)).toBe(true);
    }
    // Q4_1/Q5_1 hold any constant f16 value exactly as m with q = 0.
    for (const type of [TensorType.Q4_1, TensorType.Q5_1]) {
      const y = dequantize(type, quantize(type, new Float32Array(32).fill(-1.25)), 32);
      expect(Array.from(y).every((v) => v === -1.25)).toBe(true);
    }
  });

  it("refuses lengths that are not whole blocks", () => {
    expect(() => quantize(TensorType.Q4_K, new Float32Array(128))).toThrow(/multiple of 256/);
    expect(() => quantize(TensorType.Q5_0, new Float32Array(48))).toThrow(/multiple of 32/);
  });
});
