/** Loads a GGUF model into one of the engines, for the Node CLI and hosts. */
import { referenceEngine, type Engine } from "../model/engine";
import { loadReferenceModel } from "../model/load";

export type { Engine } from "../model/engine";

export const ENGINES = ["ref", "wasm"] as const;
export type EngineName = (typeof ENGINES)[number];

export async function loadEngine(path: string, name: EngineName): Promise<Engine> {
  if (name === "wasm") throw new Error("the wasm engine is not available in this build yet; use --engine ref");
  const { model } = await loadReferenceModel(path);
  return referenceEngine(model);
}
