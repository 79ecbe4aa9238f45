/**
 * Runs the production sampler against the reference (reference-sampler.ts) at the
 * real vocabulary size: seeded logits of a given shape each step, a history of
 * drawn tokens that the penalties act on, and several uniform draws per step
 * checked against the reference distribution's own walk.
 */
import { DEFAULT_SAMPLING, sample, seededRandom, type SamplingOptions } from "../../src/generate/sampler";
import * as ref from "./reference-sampler";

/** Stable LM 2's vocabulary. */
export const V = 100352;

export type Shape = "flat" | "peaked" | "long-tail" | "ties" | "masked";

/** Step logits. Recent history tokens are lifted so that the penalties change the top of the distribution. */
export function logitsFor(shape: Shape, rng: () => number, history: readonly number[]): Float32Array {
  const x = new Float32Array(V);
  const recent = history.slice(-6);
  const pick = (k: number) => (k < recent.length ? recent[k] : Math.floor(rng() * V));
  switch (shape) {
    case "flat": // random weights: every logit within a small range
      for (let i = 0; i < V; i++) x[i] = (rng() - 0.5) * 2;
      for (const t of recent) x[t] = 0.9 + 0.1 * rng();
      break;
    case "peaked": // a few large values over noise
    case "masked": // the same with a tenth of the vocabulary at −Infinity
      for (let i = 0; i < V; i++) x[i] = (rng() - 0.5) * 4;
      for (let k = 0; k < 6; k++) x[pick(k)] = 8 + 8 * rng();
      if (shape === "masked") for (let i = 0; i < V / 10; i++) x[Math.floor(rng() * V)] = -Infinity;
      break;
    case "long-tail": // gaussian bulk, a few dozen strong candidates
      for (let i = 0; i < V; i++) x[i] = 2.5 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
      for (let k = 0; k < 30; k++) x[pick(k)] = 10 + 8 * rng();
      break;
    case "ties": // coarse values: thousands of exact ties, and ties at the top
      for (let i = 0; i < V; i++) x[i] = Math.round((rng() - 0.5) * 16) / 4;
      for (let k = 0; k < 6; k++) x[pick(k)] = 6 + Math.floor(rng() * 3);
      break;
  }
  return x;
}

/** The reference's draw, written out: the walk `sample` does over `warpedDistribution`. */
export function drawFrom(dist: { token: number; p: number }[], r: number): number {
  for (const { token, p } of dist) {
    r -= p;
    if (r < 0) return token;
  }
  return dist[dist.length - 1].token;
}

export type Sampler = typeof sample;

export interface RunOptions {
  shape: Shape;
  sampling: Partial<SamplingOptions>;
  steps: number;
  /** Uniform draws checked per step; the first one's token extends the history. */
  draws: number;
  seed: number;
  /** The sampler under test (default: production). */
  sampler?: Sampler;
  /** Also draws exactly at the reference's cumulative sums (and the next float up and down): the hardest draws to decide. */
  boundaries?: number;
}

export interface Mismatch {
  step: number;
  r: number;
  want: number;
  got: number;
}

/** Draws that disagree with the reference (empty when all agree); throws if the sampler leaves the logits changed. */
export function compareRun(o: RunOptions): Mismatch[] {
  const opts: SamplingOptions = { ...DEFAULT_SAMPLING, ...o.sampling };
  const sampler = o.sampler ?? sample;
  const rng = seededRandom(o.seed);
  const prompt = Array.from({ length: 48 }, () => Math.floor(rng() * V));
  const generated: number[] = [];
  const bad: Mismatch[] = [];
  for (let step = 0; step < o.steps; step++) {
    const context = [...prompt, ...generated];
    const logits = logitsFor(o.shape, rng, context);
    const before = logits.slice();
    const penalised = ref.applyPenalties(logits, opts, context, generated);
    let next: number;
    if (opts.temperature === 0) {
      next = ref.argmax(penalised);
      const got = sampler(logits, opts, () => NaN, context, generated);
      if (got !== next) bad.push({ step, r: NaN, want: next, got });
    } else {
      const dist = ref.warpedDistribution(penalised, opts);
      const rs = Array.from({ length: o.draws }, () => rng());
      if (o.boundaries) rs.push(...boundaryDraws(dist, o.boundaries, rng));
      next = drawFrom(dist, rs[0]);
      for (const r of rs) {
        const want = drawFrom(dist, r);
        const got = sampler(logits, opts, () => r, context, generated);
        if (got !== want) bad.push({ step, r, want, got });
      }
    }
    for (let i = 0; i < V; i++) if (!Object.is(logits[i], before[i])) throw new Error(`step ${step}: the sampler changed logit ${i}`);
    generated.push(next);
  }
  return bad;
}

/**
 * Uniform draws at `k` of the distribution's cumulative sums as the reference accumulates
 * them, and one float either side: where the draw moves from one token to the next.
 */
function boundaryDraws(dist: { token: number; p: number }[], k: number, rng: () => number): number[] {
  const out: number[] = [];
  const n = Math.min(dist.length, 2000);
  for (let j = 0; j < k; j++) {
    const upTo = Math.floor(rng() * n);
    let c = 0;
    for (let i = 0; i <= upTo; i++) c += dist[i].p;
    for (const r of [c, nextDown(c), nextUp(c)]) if (r >= 0 && r < 1) out.push(r);
  }
  return out;
}

/**
 * Thresholds that sit on the distribution's own values: top_p at cumulative sums of the
 * sorted probabilities, min_p at probability ratios to the top one, and one float either
 * side of each. The fast paths cannot decide these and must hand them to the exact path.
 */
export function thresholdsAt(logits: Float32Array, temperature: number, k: number, rng: () => number): { topP: number[]; minP: number[] } {
  // min_p = 1e-300 keeps (almost) everything but returns it sorted, as top-p and min-p see it.
  const dist = ref.warpedDistribution(logits, { ...DEFAULT_SAMPLING, temperature, minP: 1e-300 });
  const n = Math.min(dist.length, 2000);
  const topP: number[] = [];
  const minP: number[] = [];
  for (let j = 0; j < k; j++) {
    const upTo = 1 + Math.floor(rng() * (n - 1));
    let c = 0;
    for (let i = 0; i < upTo; i++) c += dist[i].p;
    const ratio = dist[upTo].p / dist[0].p;
    for (const x of [c, nextDown(c), nextUp(c)]) if (x > 0 && x < 1) topP.push(x);
    for (const x of [ratio, nextDown(ratio), nextUp(ratio)]) if (x > 0 && x < 1) minP.push(x);
  }
  return { topP, minP };
}

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);
function nextUp(x: number): number {
  f64[0] = x;
  u64[0] += 1n;
  return f64[0];
}
function nextDown(x: number): number {
  f64[0] = x;
  u64[0] -= 1n;
  return f64[0];
}
