/**
 * Sample statistics for quality measurements (perplexity, KL divergence): means with the
 * standard error of the mean, and percentiles by linear interpolation — the same estimators
 * llama.cpp's perplexity tool prints, so our figures read like its.
 */

/** A value and its one-sigma uncertainty. */
export interface Estimate {
  value: number;
  uncertainty: number;
}

/** Running sums of a sample: enough for its mean and the mean's standard error. */
export class Moments {
  n = 0;
  sum = 0;
  sum2 = 0;

  add(x: number): void {
    this.n++;
    this.sum += x;
    this.sum2 += x * x;
  }

  /**
   * The mean and its standard error, √((E[x²] − E[x]²) / (n − 1)). The error is 0 when it
   * cannot be estimated (fewer than two values, or a variance that rounds to ≤ 0).
   */
  mean(): Estimate {
    if (this.n === 0) return { value: NaN, uncertainty: NaN };
    const m = this.sum / this.n;
    const variance = this.sum2 / this.n - m * m;
    return { value: m, uncertainty: this.n > 1 && variance > 0 ? Math.sqrt(variance / (this.n - 1)) : 0 };
  }
}

/** The covariance of two samples' means, (E[ab] − E[a]·E[b]) / (n − 1), from their running sums. */
export function covarianceOfMeans(a: Moments, b: Moments, sumAB: number): number {
  const n = a.n;
  if (n < 2 || b.n !== n) return 0;
  return (sumAB / n - (a.sum / n) * (b.sum / n)) / (n - 1);
}

/** exp of an estimate, its uncertainty carried to first order (d exp x = exp x · dx). */
export function expEstimate(e: Estimate): Estimate {
  const value = Math.exp(e.value);
  return { value, uncertainty: value * e.uncertainty };
}

/** The value at `fraction` (0..1) of an ascending sample, interpolating linearly between neighbours. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (fraction <= 0) return sorted[0];
  if (fraction >= 1) return sorted[n - 1];
  const at = fraction * (n - 1);
  const i = Math.floor(at);
  const t = at - i;
  return (1 - t) * sorted[i] + t * sorted[Math.min(i + 1, n - 1)];
}

/** The fractions llama.cpp lists for a distribution (its Δp list; "max" and "min" are 1 and 0), highest first. */
export const PERCENTILES = [
  ["max", 1],
  ["p99_9", 0.999],
  ["p99", 0.99],
  ["p95", 0.95],
  ["p90", 0.9],
  ["p75", 0.75],
  ["median", 0.5],
  ["p25", 0.25],
  ["p10", 0.1],
  ["p5", 0.05],
  ["p1", 0.01],
  ["p0_1", 0.001],
  ["min", 0],
] as const;

export type Percentiles = Record<(typeof PERCENTILES)[number][0], number>;

/** The listed percentiles of a sample (sorted here, on a copy). */
export function percentiles(values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).sort();
  return Object.fromEntries(PERCENTILES.map(([name, f]) => [name, percentile(sorted, f)])) as Percentiles;
}
