/**
 * How far a model's next-token distributions are from a base model's over the same tokens (a
 * quantized file against its F32 or F16 source): per position, the KL divergence
 * KL(base ‖ model), whether both rank the same token first, and the change in the probability
 * of the token that actually came next; over all positions, the summary llama.cpp's
 * `llama-perplexity --kl-divergence` prints. All of it in float64 from the raw logits.
 */
import { Moments, covarianceOfMeans, expEstimate, percentiles, type Estimate, type Percentiles } from "./eval-stats";
import { logSumExp } from "./logprobs";
import { argmax } from "./sampler";

/** One scored position: the model's logits against the base's, and the token that came next. */
export interface PositionComparison {
  /** −log p(target) under the model, and under the base. */
  nll: number;
  nllBase: number;
  /** Σᵢ p_base(i) · (log p_base(i) − log p(i)), in nats. */
  kld: number;
  /** p(target) − p_base(target). */
  pDiff: number;
  /** Both put the same token first. */
  sameTop: boolean;
}

export function comparePosition(logits: ArrayLike<number>, baseLogits: ArrayLike<number>, target: number): PositionComparison {
  if (logits.length !== baseLogits.length) throw new RangeError(`logits of ${logits.length} tokens against a base of ${baseLogits.length}`);
  const lse = logSumExp(logits);
  const lseBase = logSumExp(baseLogits);
  let kld = 0;
  for (let i = 0; i < logits.length; i++) {
    const logPBase = baseLogits[i] - lseBase;
    kld += Math.exp(logPBase) * (logPBase - (logits[i] - lse));
  }
  const nll = lse - logits[target];
  const nllBase = lseBase - baseLogits[target];
  return { nll, nllBase, kld, pDiff: Math.exp(-nll) - Math.exp(-nllBase), sameTop: argmax(logits) === argmax(baseLogits) };
}

export interface KlDivergence {
  positions: number;
  /** The base model's perplexity over the same positions. */
  pplBase: Estimate;
  /** Correlation of the two mean log-perplexities (their per-token NLLs move together, so the ratio is known better than either). */
  correlation: number;
  lnPplRatio: Estimate;
  pplRatio: Estimate;
  pplDiff: Estimate;
  /** KL(base ‖ model) per position, nats: its mean and distribution. */
  kld: { mean: Estimate; percentiles: Percentiles };
  /** p(next token) − p_base(next token): mean, root mean square, distribution. */
  deltaP: { mean: Estimate; rms: Estimate; percentiles: Percentiles };
  /** The fraction of positions where both put the same token first. */
  sameTop: Estimate;
}

/** Gathers position comparisons and summarizes them. */
export class KlAccumulator {
  private readonly nll = new Moments();
  private readonly nllBase = new Moments();
  private sumNllNllBase = 0;
  private readonly kld = new Moments();
  private readonly pDiff = new Moments();
  /** Moments of Δp², for the RMS and its uncertainty. */
  private readonly pDiff2 = new Moments();
  private sameTop = 0;
  private readonly klds: number[] = [];
  private readonly pDiffs: number[] = [];

  add(c: PositionComparison): void {
    this.nll.add(c.nll);
    this.nllBase.add(c.nllBase);
    this.sumNllNllBase += c.nll * c.nllBase;
    this.kld.add(c.kld);
    this.pDiff.add(c.pDiff);
    this.pDiff2.add(c.pDiff * c.pDiff);
    if (c.sameTop) this.sameTop++;
    this.klds.push(c.kld);
    this.pDiffs.push(c.pDiff);
  }

  result(): KlDivergence {
    const n = this.kld.n;
    const logPpl = this.nll.mean();
    const logPplBase = this.nllBase.mean();
    const cov = covarianceOfMeans(this.nll, this.nllBase, this.sumNllNllBase);
    const ppl = expEstimate(logPpl);
    const pplBase = expEstimate(logPplBase);
    const lnPplRatio = {
      value: logPpl.value - logPplBase.value,
      uncertainty: Math.sqrt(Math.max(0, logPpl.uncertainty ** 2 + logPplBase.uncertainty ** 2 - 2 * cov)),
    };
    const mse = this.pDiff2.mean();
    const rms = Math.sqrt(mse.value);
    const top = n > 0 ? this.sameTop / n : NaN;
    return {
      positions: n,
      pplBase,
      correlation: logPpl.uncertainty > 0 && logPplBase.uncertainty > 0 ? cov / (logPpl.uncertainty * logPplBase.uncertainty) : NaN,
      lnPplRatio,
      pplRatio: expEstimate(lnPplRatio),
      pplDiff: {
        value: ppl.value - pplBase.value,
        uncertainty: Math.sqrt(Math.max(0, ppl.uncertainty ** 2 + pplBase.uncertainty ** 2 - 2 * ppl.value * pplBase.value * cov)),
      },
      kld: { mean: this.kld.mean(), percentiles: percentiles(this.klds) },
      deltaP: {
        mean: this.pDiff.mean(),
        rms: { value: rms, uncertainty: rms > 0 ? (0.5 / rms) * mse.uncertainty : 0 },
        percentiles: percentiles(this.pDiffs),
      },
      sameTop: { value: top, uncertainty: n > 1 ? Math.sqrt((top * (1 - top)) / (n - 1)) : 0 },
    };
  }
}
