/**
 * The coordinator's side of replicated shard pipelines (docs/sharding.md, "Replicas"):
 * SHARD_REPLICAS, the Durable Object stubs of each replica, and the per-request choice of the
 * replica set for the request (the served model's `engineFor`), its replica remembered per request
 * (and updated when it fails over) so the host can name it in the `x-edgelm-replica` response
 * header and the request's log line.
 */
import type { RequestLines } from "../api/request-line";
import type { Engine } from "../model/engine";
import type { ShardStub } from "../shard/links";
import type { ShardPlan } from "../shard/plan";
import { replicaBinding, replicaInstance, replicaScript } from "../shard/replicas";
import { num, type Var } from "./env";
import type { ReplicaSet } from "./replica-set";
import { affinityOf, replicaRanking, type AffinitySource } from "./shard-affinity";

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
  /** Replicas ranked above it for the key, passed over (unhealthy) or failed at session open. */
  from: readonly number[];
  /** The request's log, once its response named the replica: a stream's session opens after its headers left. */
  lines?: Pick<RequestLines, "note">;
}

const chosen = new WeakMap<Request, ReplicaChoice>();

/** The served model's `engineFor`: `set` for the request, trying its replicas from `replicaRanking(affinity)` on. */
export function replicaChooser(set: ReplicaSet): (req: Request, body: unknown, prompt: readonly number[]) => Engine {
  return (req, body, prompt) => {
    const a = affinityOf(req.headers, body, prompt);
    const ranking = replicaRanking(a.key, set.served.length);
    const c: ReplicaChoice = { ...set.firstChoice(ranking), by: a.by };
    chosen.set(req, c);
    return set.forRequest(ranking, req.signal, (replica, from) => {
      if (replica === c.replica && from.length === c.from.length) return;
      Object.assign(c, { replica, from });
      // After the headers: only the log line can say where the stream went.
      c.lines?.note(req, failoverNote(c));
    });
  };
}

const failoverNote = (c: ReplicaChoice) => `replica ${c.replica} by ${c.by}, failover from ${c.from.join(", ")}`;

/** A sharded generation's replica, on its response (`x-edgelm-replica`) and its request's log line (`replica 1 by user`, or `replica 1 by user, failover from 0`). */
export function nameReplica(req: Request, res: Response, lines: Pick<RequestLines, "note">): void {
  const c = chosen.get(req);
  if (!c) return;
  c.lines = lines;
  res.headers.set(REPLICA_HEADER, String(c.replica));
  lines.note(req, c.from.length ? failoverNote(c) : `replica ${c.replica} by ${c.by}`);
}
