/**
 * Deterministic random numbers for synthetic weights. Only integer operations and exactly rounded
 * IEEE arithmetic are used (no Math.log/sin/cos, whose last bits may differ between engines), so
 * a seed gives the same bytes on every machine. Each (seed, tensor, row) gets its own stream,
 * so rows can be produced in any order and any slice size.
 */

/** FNV-1a over UTF-16 code units: a stable 32-bit key for a tensor name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** murmur3's finalizer: every input bit affects every output bit. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** xoshiro128** (Blackman & Vigna), seeded through splitmix32 from a list of 32-bit keys. */
export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(...keys: number[]) {
    let x = 0x6a09e667;
    for (const k of keys) x = fmix32((x ^ (k >>> 0)) + 0x9e3779b9);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      return fmix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    // The all-zero state is the generator's one fixed point.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /**
   * Approximately standard normal: the sum of four 16-bit uniforms (Irwin–Hall), centred and
   * scaled to unit variance. Bounded by ±√12 ≈ 3.46 — no outliers, which suits test weights.
   */
  normal(): number {
    const a = this.nextU32();
    const b = this.nextU32();
    const sum = (a & 0xffff) + (a >>> 16) + (b & 0xffff) + (b >>> 16);
    return (sum - 2 * 65535) * IRWIN_HALL_SCALE;
  }
}

/** 1 / std of the sum of four uniform integers in [0, 65535]: each has variance (65536² − 1) / 12. */
const IRWIN_HALL_SCALE = 1 / Math.sqrt((4 * (65536 * 65536 - 1)) / 12);

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A 53-bit seed as two 32-bit keys. */
export function seedKeys(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}
