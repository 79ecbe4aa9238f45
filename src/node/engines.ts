/** Loads a GGUF model into one of the engines, for the Node CLI and hosts. */
import { loadReferenceModel } from "../model/load";
import type { StableLMConfig } from "../model/config";

/** What every engine offers: prefill/decode over a sequence's KV cache. */
export interface Engine {
  readonly name: string;
  readonly config: StableLMConfig;
  newSequence(): unknown;
  forward(seq: unknown, tokens: number[], startPos?: number, opts?: { allLogits?: boolean }): Float32Array[] | Promise<Float32Array[]>;
}

export const ENGINES = ["ref", "wasm"] as const;
export type EngineName = (typeof ENGINES)[number];

export async function loadEngine(path: string, name: EngineName): Promise<Engine> {
  if (name === "wasm") throw new Error("the wasm engine is not available in this build yet; use --engine ref");
  const { model } = await loadReferenceModel(path);
  return {
    name: "ref",
    config: model.config,
    newSequence: () => model.newSequence(),
    forward: (seq, tokens, startPos, opts) => model.forward(seq as ReturnType<typeof model.newSequence>, tokens, startPos, opts),
  };
}
