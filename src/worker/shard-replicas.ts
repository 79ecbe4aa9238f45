/**
 * The coordinator's side of replicated shard pipelines (docs/sharding.md, "Replicas"):
 * SHARD_REPLICAS, the Durable Object stubs of each replica, and the per-request choice of the
 * replica's engine (the served model's `engineFor`), remembered per request so the host can name
 * it in the `x-edgelm-replica` response header and the request's log line.
 */
import type { RequestLines } from "../api/request-line";
import type { Engine } from "../model/engine";
import type { ShardStub } from "../shard/links";
import type { ShardPlan } from "../shard/plan";
import { replicaBinding, replicaInstance, replicaScript } from "../shard/replicas";
import { num, type Var } from "./env";
import { affinityOf, replicaFor, type AffinitySource } from "./shard-affinity";

/** The response header naming the replica that served a generation. */
export const REPLICA_HEADER = "x-edgelm-replica";

interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: unknown): ShardStub;
}

/** SHARD_REPLICAS: independent shard pipelines, default 1. */
export function parseShardReplicas(vars: Record<string, unknown>): number {
  return num("SHARD_REPLICAS", vars.SHARD_REPLICAS as Var, 1, { min: 1, integer: true });
}

/** Replica r's stub of every shard, in plan order; a missing binding is an error that says how to get it. */
export function replicaStubs(plan: ShardPlan, vars: Record<string, unknown>, r: number, replicas: number): (() => ShardStub)[] {
  return plan.shards.map((s) => {
    const binding = replicaBinding(s, r);
    const ns = vars[binding] as DurableObjectNamespaceLike | undefined;
    if (!ns || typeof ns.idFromName !== "function") {
      const fix = replicas > 1 ? `SHARD_REPLICAS is ${replicas}: use the wrangler.coordinator.toml that edgelm shard-plan --replicas ${replicas} wrote` : "use the wrangler.coordinator.toml that edgelm shard-plan wrote";
      throw new Error(`the Durable Object binding ${binding} (script ${replicaScript(s, r)}) is missing: ${fix}`);
    }
    // One instance per replica of each shard: every coordinator isolate reaches the same KV caches.
    const name = replicaInstance(r);
    return () => ns.get(ns.idFromName(name));
  });
}

export interface ReplicaChoice {
  replica: number;
  by: AffinitySource;
}

const chosen = new WeakMap<Request, ReplicaChoice>();

/** The served model's `engineFor`: replica `replicaFor(affinity)` of `engines`. */
export function replicaChooser(engines: readonly Engine[]): (req: Request, body: unknown, prompt: readonly number[]) => Engine {
  return (req, body, prompt) => {
    const a = affinityOf(req.headers, body, prompt);
    const replica = replicaFor(a.key, engines.length);
    chosen.set(req, { replica, by: a.by });
    return engines[replica];
  };
}

/** A sharded generation's replica, on its response (`x-edgelm-replica`) and its request's log line (`replica 1 by user`). */
export function nameReplica(req: Request, res: Response, lines: Pick<RequestLines, "note">): void {
  const c = chosen.get(req);
  if (!c) return;
  res.headers.set(REPLICA_HEADER, String(c.replica));
  lines.note(req, `replica ${c.replica} by ${c.by}`);
}
