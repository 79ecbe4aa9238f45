/**
 * `edgelm shard-plan` as a library: plan a GGUF file's shards and the files that deploy them.
 * The planning itself is pure and lives in src/shard/plan.ts (the coordinator and the tests use
 * it too); this module only reads the file's header and renders the deployment (Node).
 */
import { openGGUF } from "../src/gguf/node";
import { deploymentFiles, type DeployOptions } from "../src/shard/deploy";
import { planShards, type PlanOptions, type ShardPlan } from "../src/shard/plan";

export { formatPlan, planShards, ShardPlanError, type ShardPlan } from "../src/shard/plan";
export { deploymentFiles, planKeyOf } from "../src/shard/deploy";

/** Plans the shards of the GGUF at `path` (only its header is read). */
export async function planFile(path: string, opts: Omit<PlanOptions, "size">): Promise<ShardPlan> {
  const file = await openGGUF(path);
  await file.close();
  return planShards(file, { ...opts, size: file.size });
}

export function renderDeployment(plan: ShardPlan, opts: DeployOptions): Record<string, string> {
  return deploymentFiles(plan, opts);
}
