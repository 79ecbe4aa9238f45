/**
 * Whether a second model fits beside the one serving, before a swap loads it: the new engine's
 * bytes come from its GGUF header through the engine's own layout function (the same numbers it
 * will allocate by), so only the header is read; the serving engine says what it holds. Both
 * against MEMORY_LIMIT_MB. The JS heap (tokenizers, request state) is not counted: the default
 * limit is the platform's 128 MB, and a deployment that runs close to it sets the var lower.
 */
import { engineLayout } from "../engine/layout";
import { parseHeader, StreamSource } from "../gguf/index";
import { configFromGGUF } from "../model/config";
import type { Engine } from "../model/engine";
import type { Env, WorkerConfig } from "./env";
import { openModelObject } from "./source";

export interface SwapFit {
  fits: boolean;
  /** The new engine's bytes (its layout's total). */
  needBytes: number;
  /** What the serving engine holds (0 when nothing serves). */
  heldBytes: number;
  limitBytes: number;
}

const MIB = 2 ** 20;
export const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

/** Bytes the wasm engine will take for the model at `key`, from its header alone (the rest of the object is not read). */
export async function engineBytesAt(env: Env, key: string, cfg: Pick<WorkerConfig, "kernels" | "kvBudgetMB" | "maxBatch">): Promise<number> {
  const obj = await openModelObject(env, key);
  const src = new StreamSource(obj.body, obj.size);
  try {
    // The vocabulary arrays are the bulk of a header and say nothing about sizes.
    const header = await parseHeader(src, { skipArrays: true });
    const config = configFromGGUF(header.metadata, header.tensorByName);
    return engineLayout(config, header.tensorByName, { build: cfg.kernels ?? "max", kvBudgetMB: cfg.kvBudgetMB, maxBatch: cfg.maxBatch }).total;
  } finally {
    await src.cancel();
  }
}

export function swapFit(needBytes: number, serving: Engine | undefined, limitMB: number): SwapFit {
  // An engine that cannot tell (the reference engine) is taken to be as large as the new one.
  const heldBytes = serving ? (serving.memoryBytes?.() ?? needBytes) : 0;
  const limitBytes = limitMB * MIB;
  return { fits: heldBytes + needBytes <= limitBytes, needBytes, heldBytes, limitBytes };
}
