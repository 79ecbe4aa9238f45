/**
 * The coordinator's side of replicated shard pipelines (docs/sharding.md, "Replicas"):
 * SHARD_REPLICAS, the Durable Object stubs of each replica, and the per-request choice of the
 * replica set for the request (the served model's `engineFor`), its replica remembered per request
 * (and updated when it fails over) so the host can name it in the `x-edgelm-replica` response
 * header and the request's log line once it is final.
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
  /** Set once known: true when the session opened on `replica`, false when it failed on every replica tried (`tried`) or the generation ended first. */
  served?: boolean;
  /** Whether the session open reached a replica (waited for its gate, sent it a frame). */
  tried: boolean;
  /** Settles once the replica is final: the session opened (or failed on every replica), or the generation ended without opening one. */
  final: Promise<void>;
  settle(): void;
}

const chosen = new WeakMap<Request, ReplicaChoice>();

/** The served model's `engineFor`: `set` for the request, trying its replicas from `replicaRanking(affinity)` on. */
export function replicaChooser(set: ReplicaSet): (req: Request, body: unknown, prompt: readonly number[]) => Engine {
  return (req, body, prompt) => {
    const a = affinityOf(req.headers, body, prompt);
    const ranking = replicaRanking(a.key, set.served.length);
    let settle!: () => void;
    const final = new Promise<void>((resolve) => (settle = resolve));
    const c: ReplicaChoice = { ...set.firstChoice(ranking), by: a.by, tried: false, final, settle };
    chosen.set(req, c);
    return set.forRequest(ranking, {
      signal: req.signal,
      onRoute: (replica, from) => Object.assign(c, { replica, from, tried: true }),
      onOpen: (served) => {
        c.served = served;
        settle();
      },
    });
  };
}

/** The generation of `req` has ended: if it never reached a session open, its replica is as final as it gets. */
export function generationEnded(req: Request): void {
  const c = chosen.get(req);
  if (!c) return;
  c.served ??= false;
  c.settle();
}

const aborted = (signal: AbortSignal) => new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));

/**
 * A sharded generation's replica, on its response (`x-edgelm-replica`) and its request's log line
 * (`replica 1 by user`, or `replica 1 by user, failover from 0`). The response waits until the
 * replica is final: a stream's first forward call is where its session opens and where it may
 * fail over, and the headers must name the replica that serves it. The first token needs that call
 * anyway, so it is not delayed.
 */
export async function nameReplica(req: Request, res: Response, lines: Pick<RequestLines, "note">): Promise<void> {
  const c = chosen.get(req);
  if (!c) return;
  await Promise.race([c.final, aborted(req.signal)]);
  // A request cancelled during its session open, or a generation that ended before one, was served by none.
  if (c.served !== true) return lines.note(req, `no replica served (by ${c.by}${c.tried ? `; tried ${[...c.from, c.replica].join(", ")}` : ""})`);
  res.headers.set(REPLICA_HEADER, String(c.replica));
  lines.note(req, `replica ${c.replica} by ${c.by}${c.from.length ? `, failover from ${c.from.join(", ")}` : ""}`);
}
