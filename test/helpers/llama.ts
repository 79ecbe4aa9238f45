/**
 * llama.cpp (npm node-llama-cpp, prebuilt CPU binary, nothing downloaded) as
 * the independent oracle: teacher-forced next-token log-probabilities.
 */
import { getLlama, type ControlledEvaluateInputItem, type Llama, type Token } from "node-llama-cpp";

let llamaPromise: Promise<Llama> | undefined;

export function llama(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, logLevel: "error" as never });
  return llamaPromise;
}

/**
 * For each position i, log p(next token | tokens[0..i]) over the whole
 * vocabulary (−Infinity where llama.cpp reports nothing). The KV cache is kept
 * in f32 so the comparison measures the model, not llama.cpp's f16 cache.
 */
export async function llamaLogProbs(modelPath: string, tokens: number[], vocabSize: number): Promise<Float64Array[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath });
  try {
    const context = await model.createContext({
      contextSize: Math.max(64, tokens.length + 1),
      batchSize: Math.max(64, tokens.length),
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    try {
      const results = await context.getSequence().controlledEvaluate(
        tokens.map((t): ControlledEvaluateInputItem => [t as Token, { generateNext: { probabilities: true, options: { temperature: 0 } } }]),
      );
      return results.map((r, i) => {
        const probs = r?.next?.probabilities;
        if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
        const out = new Float64Array(vocabSize).fill(-Infinity);
        for (const [t, p] of probs) out[t] = Math.log(p);
        return out;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Our logits → log-probabilities (float64 log-softmax). */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

/** Index of the largest value, and its margin over the runner-up. */
export function top2(x: ArrayLike<number>): { top: number; margin: number } {
  let a = 0;
  let b = -1;
  for (let i = 1; i < x.length; i++) {
    if (x[i] > x[a]) {
      b = a;
      a = i;
    } else if (b < 0 || x[i] > x[b]) b = i;
  }
  return { top: a, margin: x[a] - x[b] };
}
