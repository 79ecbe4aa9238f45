/**
 * What a shard's engine holds: the plan's tensors for the shard, under their
 * file names, and the engine options that place only those — its layers and
 * their KV cache, or the final norm and its slice of the head; never the
 * embedding (the coordinator reads rows by range). The planner sizes a shard
 * from exactly this (engineLayout) and the runtime builds the shard's engine
 * from it (placeEngine), so a plan's page maximum and what the shard allocates
 * come from one computation.
 */
import type { TensorInfo } from "../gguf/types";
import type { PartOptions, WasmEngineOptions } from "../engine/index";
import type { ShardSpec } from "./plan";

/**
 * Rows of one head product on a head shard: a batched step's logits rows (one per decoding
 * sequence) share one read of the head's weights up to this many; more take another pass. The
 * coordinator's default MAX_BATCH. Costs B × (H + rows) f32 of buffers per head shard.
 */
export const SHARD_LOGITS_BATCH = 4;

export interface ShardPart {
  /** By name. `offset` is the absolute file offset (the runtime reads by TensorRef, not by it). */
  tensors: Map<string, TensorInfo>;
  options: WasmEngineOptions & PartOptions;
}

export function shardPart(
  run: { contextLength: number; sequences: number; prefillChunk: number },
  spec: Pick<ShardSpec, "kind" | "layers" | "rows" | "tensors">,
): ShardPart {
  const tensors = new Map<string, TensorInfo>();
  for (const r of spec.tensors) tensors.set(r.name, { ...r, dims: [...r.dims], count: r.dims.reduce((a, b) => a * b, 1) });
  const [r0, r1] = spec.rows ?? [0, 0];
  return {
    tensors,
    options: {
      contextLength: run.contextLength,
      sequences: run.sequences,
      prefillChunk: run.prefillChunk,
      maxBatch: Math.max(run.sequences, SHARD_LOGITS_BATCH),
      embedding: false,
      layers: spec.kind === "layers" ? spec.layers! : [0, 0],
      logitsRows: spec.kind === "head" ? r1 - r0 : 0,
    },
  };
}
