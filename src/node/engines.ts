/** Loads a GGUF model into one of the engines, for the Node CLI and hosts. */
import type { EngineName } from "../api/index";
import { referenceEngine, type Engine } from "../model/engine";
import { loadReferenceModel } from "../model/node";
import { loadWasmEngine, type FileLoadOptions } from "../engine/node";

export type { Engine } from "../model/engine";

/** The sharded engine needs Cloudflare's shard Workers, so Node loads the others. */
export const NODE_ENGINES = ["ref", "wasm"] as const satisfies readonly EngineName[];
export type NodeEngineName = (typeof NODE_ENGINES)[number];

export async function loadEngine(path: string, name: NodeEngineName, wasmOptions: FileLoadOptions = {}): Promise<Engine> {
  if (name === "wasm") return loadWasmEngine(path, wasmOptions);
  const { model } = await loadReferenceModel(path, wasmOptions.verify);
  return referenceEngine(model);
}
