/**
 * Replicated shard pipelines (docs/sharding.md, "Replicas"): SHARD_REPLICAS = N runs N complete,
 * independent copies of every shard, and the coordinator sends each request through one of them.
 *
 * Each replica of a shard is its own Worker script with its own Durable Object class, never a
 * second instance of the same class: Cloudflare documents that instances of one class may share
 * an isolate's global memory, and so its 128 MB, which two shards of ~110 MB cannot
 * (test/shard/isolates.test.ts shows local workerd doing exactly that). Replica 0 keeps the
 * names of an unreplicated deployment, so going from 1 to N replicas only adds scripts.
 */
import { ShardPlanError, type ShardPlan, type ShardSpec } from "./plan";

/** What the planner does not decide but the deployment does: how many pipelines, and how many sequences each batches. */
export interface Deployment {
  /** Independent shard pipelines (the coordinator's SHARD_REPLICAS). */
  replicas: number;
  /** Sequences one replica runs in one batched step (the coordinator's MAX_BATCH). */
  maxBatch: number;
}

/**
 * Workers, and Durable Object classes, an account may have on the Workers Paid plan (100 of each
 * on Free), from the Workers and the Durable Objects limits pages
 * (developers.cloudflare.com/workers/platform/limits, …/durable-objects/platform/limits, 2026-12):
 * every shard replica is one of each, and the coordinator is one more Worker.
 */
export const MAX_SHARD_CLASSES = 500;

/** Replica r of shard `s`'s Worker script. */
export const replicaScript = (s: Pick<ShardSpec, "script">, r: number): string => (r === 0 ? s.script : `${s.script}-r${r}`);

/** The coordinator's Durable Object binding for replica r of shard `s`. */
export const replicaBinding = (s: Pick<ShardSpec, "binding">, r: number): string => (r === 0 ? s.binding : `${s.binding}_R${r}`);

/** The Durable Object instance name of replica r: distinct per replica, so that even two replicas bound to one script by mistake stay two pipelines. */
export const replicaInstance = (r: number): string => (r === 0 ? "shard" : `shard-r${r}`);

/** A positive integer, or a ShardPlanError naming `what`. */
function positive(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) throw new ShardPlanError(`${what} must be a positive integer, got ${n}`);
}

/** Refuses a deployment the platform would not take (more classes than an account may have). */
export function checkDeployment(plan: ShardPlan, d: Deployment): void {
  positive(d.replicas, "replicas");
  positive(d.maxBatch, "max batch");
  const classes = plan.shards.length * d.replicas;
  if (classes + 1 > MAX_SHARD_CLASSES) {
    throw new ShardPlanError(
      `${d.replicas} replicas of ${plan.shards.length} shards are ${classes} Workers with a Durable Object class each, and the coordinator one more Worker; ` +
        `an account may have ${MAX_SHARD_CLASSES} of each on the Workers Paid plan: use at most ${Math.floor((MAX_SHARD_CLASSES - 1) / plan.shards.length)} replicas`,
    );
  }
}

export interface DeploymentMemory {
  /** Isolates of one pipeline (its shards). */
  isolates: number;
  /** Sum of one pipeline's shard isolates as planned (WASM maximum + overhead each). */
  perReplica: number;
  /** N × perReplica, over N × isolates isolates. */
  total: number;
  /** The same with each shard at its full budget (--budget-mb): what the isolates may grow to. */
  perReplicaBudget: number;
  totalBudget: number;
}

export function deploymentMemory(plan: ShardPlan, replicas: number): DeploymentMemory {
  const perReplica = plan.shards.reduce((a, s) => a + s.memory.total, 0);
  const perReplicaBudget = plan.shards.length * plan.budgetBytes;
  return { isolates: plan.shards.length, perReplica, total: replicas * perReplica, perReplicaBudget, totalBudget: replicas * perReplicaBudget };
}

/** The deployment's lines under the plan's table (edgelm shard-plan); without `maxBatch`, the replicas' line only. */
export function formatDeployment(plan: ShardPlan, d: Pick<Deployment, "replicas"> & Partial<Deployment>): string {
  const size = (n: number) => (n < 2 ** 30 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 2 ** 30).toFixed(2)} GiB`);
  const m = deploymentMemory(plan, d.replicas);
  const lines = [
    `replicas: ${d.replicas} independent pipeline(s) (SHARD_REPLICAS), each ${m.isolates} isolates: ${size(m.perReplica)} planned, ${size(m.perReplicaBudget)} of budgets; ` +
      `all replicas ${d.replicas * m.isolates} isolates: ${size(m.total)} planned, ${size(m.totalBudget)} of budgets; ${plan.shards.length * d.replicas + 1} Workers and ${plan.shards.length * d.replicas} Durable Object classes (an account may have ${MAX_SHARD_CLASSES} of each).`,
  ];
  if (d.maxBatch === undefined) return lines.join("\n");
  lines.push(`batch: up to ${d.maxBatch} sequence(s) per step in each replica (MAX_BATCH); each shard holds KV for ${plan.sequences} full-context sequence(s) of ${plan.contextLength} positions.`);
  if (d.maxBatch > plan.sequences) lines.push(`note: a batch of ${d.maxBatch} sequences at full context needs --sequences ${d.maxBatch}; with ${plan.sequences}, only shorter sequences share the KV.`);
  return lines.join("\n");
}
