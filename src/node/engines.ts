/** Loads a GGUF model into one of the engines, for the Node CLI and hosts. */
import { referenceEngine, type Engine } from "../model/engine";
import { loadReferenceModel } from "../model/node";
import { loadWasmEngine, type FileLoadOptions } from "../engine/node";

export type { Engine } from "../model/engine";

export const ENGINES = ["ref", "wasm"] as const;
export type EngineName = (typeof ENGINES)[number];
/** The engine the CLI and servers use unless told otherwise. */
export const DEFAULT_ENGINE: EngineName = "wasm";

export async function loadEngine(path: string, name: EngineName, wasmOptions: FileLoadOptions = {}): Promise<Engine> {
  if (name === "wasm") return loadWasmEngine(path, wasmOptions);
  const { model } = await loadReferenceModel(path);
  return referenceEngine(model);
}
