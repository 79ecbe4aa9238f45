/**
 * `edgelm shard-plan` as a library: plan a GGUF file's shards and the files that deploy them.
 * The planning itself is pure and lives in src/shard/plan.ts (the coordinator and the tests use
 * it too); this module only reads the file's header and renders the deployment (Node).
 */
import { createHash } from "node:crypto";
import { openGGUF, openModelFile } from "../src/gguf/node";
import { deploymentFiles, type DeployOptions } from "../src/shard/deploy";
import { planShards, type PlanOptions, type ShardPlan } from "../src/shard/plan";

export { formatPlan, planShards, ShardPlanError, type ShardPlan } from "../src/shard/plan";
export { deploymentFiles, planKeyOf } from "../src/shard/deploy";

/**
 * Plans the shards of the GGUF at `path`, with the sha256 of the header and of every range a
 * shard reads, so each shard can verify its own part as it loads (the ranges are read once, to
 * hash them).
 */
export async function planFile(path: string, opts: Omit<PlanOptions, "size">): Promise<ShardPlan> {
  const file = await openGGUF(path);
  await file.close();
  const plan = planShards(file, { ...opts, size: file.size });
  await addRangeHashes(plan, path);
  return plan;
}

const HASH_CHUNK = 4 << 20;

/** Sets `sha256` on every shard's tensor ranges and the header's hash on the plan, from the file's bytes. */
export async function addRangeHashes(plan: ShardPlan, path: string): Promise<void> {
  const { handle, size } = await openModelFile(path);
  try {
    if (size !== plan.model.size) throw new Error(`${path} is ${size} bytes, the plan was made for ${plan.model.size}`);
    const buf = new Uint8Array(HASH_CHUNK);
    const hashRange = async (offset: number, length: number): Promise<string> => {
      const h = createHash("sha256");
      for (let at = offset; at < offset + length; ) {
        const { bytesRead } = await handle.read(buf, 0, Math.min(HASH_CHUNK, offset + length - at), at);
        if (bytesRead === 0) throw new Error(`${path}: ended at ${at} while hashing`);
        h.update(buf.subarray(0, bytesRead));
        at += bytesRead;
      }
      return h.digest("hex");
    };
    plan.model.headerSha256 = await hashRange(0, plan.model.dataOffset);
    for (const s of plan.shards) for (const r of s.tensors) r.sha256 = await hashRange(r.offset, r.byteLength);
  } finally {
    await handle.close();
  }
}

export function renderDeployment(plan: ShardPlan, opts: DeployOptions): Record<string, string> {
  return deploymentFiles(plan, opts);
}
