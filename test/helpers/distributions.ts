/**
 * How far apart two runs' next-token distributions are, position by position
 * (log-probabilities over the whole vocabulary; −Infinity where a side
 * reports nothing): the KL divergence from the oracle's, the largest
 * log-probability gap, and top-1 agreement where our top token is clear.
 */
import { loadReferenceModel } from "../../src/model/node";
import { llamaLogProbs, logSoftmax, top2 } from "./llama";

export interface DistributionGap {
  /** KL(theirs ‖ ours) in nats: mean and largest over positions. */
  meanKL: number;
  maxKL: number;
  /** Largest |Δ log p| over tokens the oracle gives more than e^-30. */
  maxDiff: number;
  /** Positions where our top token leads the runner-up by more than `margin` (nats). */
  clear: number;
  /** Of those, positions where both sides pick the same top token. */
  agree: number;
}

export function compareDistributions(ours: Float64Array[], theirs: Float64Array[], margin = 0.05): DistributionGap {
  let sumKL = 0, maxKL = 0, maxDiff = 0, clear = 0, agree = 0;
  for (let i = 0; i < ours.length; i++) {
    let kl = 0;
    for (let t = 0; t < ours[i].length; t++) {
      const lt = theirs[i][t];
      if (lt === -Infinity) continue;
      kl += Math.exp(lt) * (lt - ours[i][t]);
      if (lt > -30) maxDiff = Math.max(maxDiff, Math.abs(ours[i][t] - lt));
    }
    sumKL += kl;
    maxKL = Math.max(maxKL, kl);
    const a = top2(ours[i]);
    if (a.margin > margin) {
      clear++;
      if (a.top === top2(theirs[i]).top) agree++;
    }
  }
  return { meanKL: sumKL / ours.length, maxKL, maxDiff, clear, agree };
}

/** Our reference pass and llama.cpp on the same GGUF, teacher-forced over `tokens`. */
export async function crosscheckFile(path: string, tokens: number[], margin?: number): Promise<DistributionGap> {
  const { model } = await loadReferenceModel(path);
  const ours = model.forward(model.newSequence(), tokens, 0, { allLogits: true }).map(logSoftmax);
  const theirs = await llamaLogProbs(path, tokens, model.config.vocabSize);
  return compareDistributions(ours, theirs, margin);
}
