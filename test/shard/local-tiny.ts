/**
 * The tiny model (Q4_0) twice in this process: the single-isolate wasm engine, and every shard of
 * a 19 MiB plan (one layer shard, six head slices) behind a coordinator's engine, for Node tests
 * that compare the two bit for bit.
 */
import { openGGUF } from "../../src/gguf/node";
import { loadWasmEngine } from "../../src/engine/node";
import type { WasmEngine } from "../../src/engine/index";
import { planShards, type ShardPlan } from "../../src/shard/plan";
import { loadLocalShards, type LocalShards } from "../../src/shard/node";
import { synthGGUF } from "../../weights-tools/fixtures";

export async function planFor(path: string, budgetMb: number, context: number, sequences = 2): Promise<ShardPlan> {
  const f = await openGGUF(path);
  await f.close();
  return planShards(f, { budgetBytes: budgetMb * 2 ** 20, contextLength: context, sequences, key: "m.gguf", size: f.size });
}

/** Context 256; the plan's KV holds `sequences` × 256 positions (blocks of 16), the single engine's `singleSequences` × 256. */
export async function tinyShards(sequences = 2, singleSequences = sequences): Promise<{ path: string; single: WasmEngine; plan: ShardPlan; shards: LocalShards }> {
  const path = await synthGGUF("tiny", "q4_0");
  const single = await loadWasmEngine(path, { contextLength: 256, sequences: singleSequences, threads: 1 });
  const plan = await planFor(path, 19, 256, sequences);
  return { path, single, plan, shards: await loadLocalShards(plan, path) };
}
