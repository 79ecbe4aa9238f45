import { describe, expect, it } from "vitest";
import { bf16ToF32, dequantize, f16ToF32, f32ToBF16, f32ToF16, quantize, tensorByteLength } from "../../src/gguf/quant";
import { TensorType } from "../../src/gguf/types";
import { seededRandom } from "../../src/generate/sampler";

function gaussian(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) * scale;
  return out;
}

describe("f16 and bf16 conversion", () => {
  it("round-trips every finite f16 bit pattern exactly", () => {
    for (let h = 0; h < 0x10000; h++) {
      const e = (h >> 10) & 0x1f;
      if (e === 31) continue;
      expect(f32ToF16(f16ToF32(h))).toBe(h === 0x8000 ? 0x8000 : h);
    }
  });
  it("rounds to nearest even, overflows to infinity and keeps NaN", () => {
    expect(f16ToF32(f32ToF16(1 + 2 ** -11))).toBe(1); // tie → even
    expect(f16ToF32(f32ToF16(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9); // tie → even (up)
    expect(f16ToF32(f32ToF16(65520))).toBe(Infinity);
    expect(f16ToF32(f32ToF16(65519))).toBe(65504);
    expect(f16ToF32(f32ToF16(2 ** -25))).toBe(0); // tie at the smallest subnormal → even (0)
    expect(f16ToF32(f32ToF16(1.5 * 2 ** -24))).toBe(2 ** -23);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
  });
  it("matches Math.fround-based bf16 truncation bounds", () => {
    const x = gaussian(10000, 1, 100);
    for (const v of x) {
      const back = bf16ToF32(f32ToBF16(v));
      expect(Math.abs(back - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
    }
    expect(bf16ToF32(f32ToBF16(1 + 2 ** -8))).toBe(1); // tie → even
    expect(Number.isNaN(bf16ToF32(f32ToBF16(NaN)))).toBe(true);
  });
});

function argmaxAbs(x: Float32Array, start: number): number {
  let best = 0;
  for (let j = 1; j < 32; j++) if (Math.abs(x[start + j]) > Math.abs(x[start + best])) best = j;
  return best;
}

describe("quantize / dequantize error bounds", () => {
  const x = gaussian(256 * 16, 7);
  const blockMax = (i: number, size: number) => {
    let m = 0;
    const b = Math.floor(i / size) * size;
    for (let j = b; j < b + size; j++) m = Math.max(m, Math.abs(x[j]));
    return m;
  };
  it("sizes blocks as docs/model.md (Quant block layouts) gives them", () => {
    expect(tensorByteLength(TensorType.Q4_0, [64, 3])).toBe(6 * 18);
    expect(tensorByteLength(TensorType.Q8_0, [64])).toBe(2 * 34);
    expect(tensorByteLength(TensorType.Q6_K, [512])).toBe(2 * 210);
    expect(() => tensorByteLength(TensorType.Q4_0, [33])).toThrow(/multiple of 32/);
  });
  it("F32 is exact, F16/BF16 within half an ulp", () => {
    expect(dequantize(TensorType.F32, quantize(TensorType.F32, x), x.length)).toEqual(x);
    const h = dequantize(TensorType.F16, quantize(TensorType.F16, x), x.length);
    const b = dequantize(TensorType.BF16, quantize(TensorType.BF16, x), x.length);
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs(h[i] - x[i])).toBeLessThanOrEqual(Math.max(Math.abs(x[i]) * 2 ** -11, 2 ** -25));
      expect(Math.abs(b[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
    }
  });
  it("Q8_0 error ≤ half a step (max|x|/127/2) plus f16 scale rounding", () => {
    const y = dequantize(TensorType.Q8_0, quantize(TensorType.Q8_0, x), x.length);
    for (let i = 0; i < x.length; i++) {
      const step = blockMax(i, 32) / 127;
      expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(step * 0.5 + Math.abs(x[i]) * 2 ** -10);
    }
  });
  it("Q4_0 error ≤ half a step (max|x|/8), one step only at the clamped end", () => {
    const y = dequantize(TensorType.Q4_0, quantize(TensorType.Q4_0, x), x.length);
    let worst = 0;
    let overHalf = 0;
    for (let i = 0; i < x.length; i++) {
      const step = blockMax(i, 32) / 8;
      const err = Math.abs(y[i] - x[i]);
      worst = Math.max(worst, err / step);
      // The block's max maps to -8 exactly; the opposite sign can reach +8, clamped to +7.
      expect(err).toBeLessThanOrEqual(step + blockMax(i, 32) * 2 ** -10);
      if (err > step * 0.5 + blockMax(i, 32) * 2 ** -10) {
        overHalf++;
        expect(Math.sign(x[i])).toBe(-Math.sign(x[Math.floor(i / 32) * 32 + argmaxAbs(x, Math.floor(i / 32) * 32)]));
      }
    }
    expect(overHalf).toBeLessThan(x.length / 100);
    expect(worst).toBeGreaterThan(0.3); // it really is 4-bit
  });
  it("Q6_K error ≤ one sub-block step plus the int8 scale's rounding", () => {
    const y = dequantize(TensorType.Q6_K, quantize(TensorType.Q6_K, x), x.length);
    let sum = 0;
    for (let i = 0; i < x.length; i++) {
      const step = blockMax(i, 16) / 32;
      // Sub-block scales are int8 multiples of d = (largest scale)/127: each is off by ≤ d/2, times |q| ≤ 32.
      const d = blockMax(i, 256) / 32 / 127;
      expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(step + 16 * d + 1e-6);
      sum += Math.abs(y[i] - x[i]) / step;
    }
    expect(sum / x.length).toBeLessThan(0.35); // typical error is a quarter step, as for rounding
  });
  it("decodes hand-made Q4_0 and Q6_K blocks in the nibble order of docs/model.md (Quant block layouts)", () => {
    const q4 = new Uint8Array(18);
    new DataView(q4.buffer).setUint16(0, f32ToF16(0.5), true);
    for (let j = 0; j < 16; j++) q4[2 + j] = (j & 0xf) | ((15 - j) << 4);
    const w = dequantize(TensorType.Q4_0, q4, 32);
    expect(w[0]).toBe(-4); // (0-8)·0.5: low nibble → first half
    expect(w[16]).toBe(3.5); // (15-8)·0.5: high nibble → second half
    const q6 = new Uint8Array(210);
    new DataView(q6.buffer).setUint16(208, f32ToF16(1), true);
    q6.fill(1, 192, 208); // all scales 1
    q6[0] = 0x0f | (0x03 << 4); // y[0] low nibble 15, y[64] low nibble 3
    q6[128] = 0b11_10_01_11; // qh: y[0] +3<<4, y[32] +1<<4, y[64] +2<<4, y[96] +3<<4
    const v = dequantize(TensorType.Q6_K, q6, 256);
    expect(v[0]).toBe((15 | (3 << 4)) - 32);
    expect(v[32]).toBe((0 | (1 << 4)) - 32);
    expect(v[64]).toBe((3 | (2 << 4)) - 32);
    expect(v[96]).toBe((0 | (3 << 4)) - 32);
  });
});
