/**
 * The local sharded deployments' presets: each synthetic model's shard budget and context, as
 * `node scripts/shards-dev.mjs --preset P` plans it and the concurrency bench's sharded host runs
 * it. A model file given by path is planned as the full-size one.
 */
export const SHARDED_PRESETS: Record<string, { budgetMb: number; context: number }> = {
  tiny: { budgetMb: 19, context: 512 },
  full2l: { budgetMb: 120, context: 2048 },
  "1_6b": { budgetMb: 120, context: 2048 },
};

/** A model file given by path (not a preset). */
export const FILE_PRESET = SHARDED_PRESETS["1_6b"];
