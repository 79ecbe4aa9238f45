/** What every engine offers the generation loop: prefill/decode over a sequence's KV cache. */
import type { StableLMConfig } from "./config";
import { ReferenceModel, type Sequence } from "./reference";

export interface Engine {
  /** Which engine and kernel build is running (shown in /health and logs). */
  readonly name: string;
  readonly config: StableLMConfig;
  newSequence(): unknown;
  /** Feeds tokens at positions startPos.. and returns the last position's logits (or every position's). */
  forward(seq: unknown, tokens: number[], startPos?: number, opts?: { allLogits?: boolean }): Float32Array[] | Promise<Float32Array[]>;
}

export function referenceEngine(model: ReferenceModel): Engine {
  return {
    name: "ref",
    config: model.config,
    newSequence: () => model.newSequence(),
    forward: (seq, tokens, startPos, opts) => model.forward(seq as Sequence, tokens, startPos, opts),
  };
}
