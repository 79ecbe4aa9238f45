/**
 * Replicated shard pipelines as one engine (docs/sharding.md, "Replicas"): admission per replica and
 * failover at session open.
 *
 * Admission: each replica runs at most `maxBatch` sequences (its own FIFO gate), so the coordinator
 * runs up to N × maxBatch (the engine's `liveStats().batch.maxBatch`, which sizes the host's queue).
 * A replica's scheduler never holds more sequences than its batch, so its shards never hold KV for
 * more than the plan sized them for.
 *
 * Failover: a sequence picks its replica at its first forward call (the session open, where the
 * shards load), trying the request's replicas in failover order (shard-affinity.ts). A replica is
 * unhealthy while a failure of it is more recent than REPLICA_RETRY_MS: a shard's recorded load or
 * integrity failure, or a session open that failed here. After that a new request tries it again,
 * which is how a shard's failed load is retried (its next frame loads it again) and how a replaced
 * GGUF or plan is noticed. A sequence never moves once its first call succeeded: by then tokens may
 * have been streamed, and moving would re-run the prefix on another pipeline.
 */
import type { Release } from "../api/queue";
import type { Engine, EngineStats, ForwardOptions } from "../model/engine";
import { ShardError, type ShardedEngine } from "../shard/engine";
import { failoverOrder } from "./shard-affinity";
import { WorkerQueue } from "./queue";

/** How long a failed replica is passed over before new requests try it again. */
export const REPLICA_RETRY_MS = 30_000;

/** Where a sequence went: its replica, and the replicas ranked above it for its key that it passed over or failed on. */
export type OnRoute = (replica: number, from: readonly number[]) => void;

/** A request's view of its sequences: `signal` ends a wait at a gate; `onRoute` is told each replica tried; `onOpen`, once, how the session open ended (served: on the last replica routed to; or not, on none). */
export interface RequestHooks {
  signal?: AbortSignal;
  onRoute?: OnRoute;
  onOpen?: (served: boolean) => void;
}

interface Handle extends RequestHooks {
  ranking: readonly number[];
  replica?: number;
  inner?: unknown;
  release?: Release;
  opened: boolean;
}

export class ReplicaSet implements Engine {
  private readonly gates: WorkerQueue[];
  private readonly failedAt: number[];
  private readonly everyReplica: number[];
  readonly reusePrefix?: (seq: unknown, prompt: readonly number[]) => number;

  constructor(
    /** Each replica's pipeline (its health), and the engine it is served through (its scheduler, when batching). */
    readonly pipelines: readonly ShardedEngine[],
    readonly served: readonly Engine[],
    readonly maxBatch: number,
    private readonly now: () => number = Date.now,
  ) {
    if (served.length !== pipelines.length || served.length < 1) throw new Error(`${served.length} served engines for ${pipelines.length} replicas`);
    // Nothing waits at a gate that the host's queue did not admit: the bound on waiters is the queue's.
    this.gates = served.map(() => new WorkerQueue(Number.MAX_SAFE_INTEGER, 1, { maxRunning: maxBatch }));
    this.failedAt = served.map(() => -Infinity);
    this.everyReplica = served.map((_, r) => r);
    // The sharded engines reuse no prefix; a scheduler says 0, and the usage says so too.
    if (served[0].reusePrefix) this.reusePrefix = () => 0;
  }

  get name(): string {
    return `${this.served.length} replicas of ${this.served[0].name}`;
  }

  get config(): Engine["config"] {
    return this.served[0].config;
  }

  /** Whether new sequences go to replica `r` first: no failure of it in the last REPLICA_RETRY_MS. */
  healthy(r: number): boolean {
    let last = this.failedAt[r];
    for (const f of this.pipelines[r].shardFailures.values()) last = Math.max(last, f.at);
    return this.now() - last >= REPLICA_RETRY_MS;
  }

  /** Sequences of replica `r` running and waiting for its gate. */
  occupancy(r: number): { running: number; waiting: number } {
    return { running: this.gates[r].load.running, waiting: this.gates[r].depth };
  }

  /** This engine for one request: its sequences try the replicas in `ranking`'s failover order, waiting (until `hooks.signal`) for a place in one. */
  forRequest(ranking: readonly number[], hooks: RequestHooks = {}): Engine {
    return {
      name: this.name,
      config: this.config,
      newSequence: () => this.handle(ranking, hooks),
      forward: (seq, tokens, startPos, opts) => this.forward(seq, tokens, startPos, opts),
      ...(this.reusePrefix ? { reusePrefix: this.reusePrefix } : {}),
      releaseSequence: (seq) => this.releaseSequence(seq),
      liveStats: () => this.liveStats(),
    };
  }

  /** The replica a request would be sent to now, and those ranked above it that it passes over. */
  firstChoice(ranking: readonly number[]): { replica: number; from: number[] } {
    const replica = failoverOrder(ranking, (r) => this.healthy(r))[0];
    return { replica, from: ranking.slice(0, ranking.indexOf(replica)) };
  }

  newSequence(): unknown {
    return this.handle(this.everyReplica, {});
  }

  forward(seq: unknown, tokens: number[], startPos?: number, opts?: ForwardOptions): Promise<Float32Array[]> {
    const h = seq as Handle;
    if (h.opened) return Promise.resolve(this.served[h.replica!].forward(h.inner, tokens, startPos, opts));
    return this.open(h, tokens, startPos, opts);
  }

  releaseSequence(seq: unknown): void {
    this.unbind(seq as Handle);
  }

  liveStats(): EngineStats {
    const parts = this.served.map((e) => e.liveStats?.().batch);
    const sum = (f: (b: NonNullable<EngineStats["batch"]>) => number) => parts.reduce((a, b) => a + (b ? f(b) : 0), 0);
    const gates = this.served.map((_, r) => this.occupancy(r));
    let steps: number, rows: number, sequences: number;
    if (parts[0]) [steps, rows, sequences] = [sum((b) => b.steps), sum((b) => b.rows), sum((b) => b.sequences)];
    else {
      // Without a scheduler (MAX_BATCH 1) every forward is a step of one sequence: its rows and sequences are the forwards.
      steps = rows = 0;
      for (const p of this.pipelines) [steps, rows] = [steps + p.stats.steps, rows + p.stats.forwards];
      sequences = rows;
    }
    return {
      batch: {
        steps,
        rows,
        sequences,
        live: gates.reduce((a, g) => a + g.running, 0),
        waiting: gates.reduce((a, g) => a + g.waiting, 0) + sum((b) => b.waiting),
        maxBatch: this.maxBatch * this.served.length,
        maxBatchTokens: parts[0]?.maxBatchTokens ?? 0,
        lost: sum((b) => b.lost),
      },
    };
  }

  /** Every replica's scheduler stops (a model swap closes the old model's engine). */
  async close(): Promise<void> {
    await Promise.all(this.served.map((e) => e.close?.()));
  }

  private handle(ranking: readonly number[], hooks: RequestHooks): Handle {
    return { ...hooks, ranking, opened: false };
  }

  private async open(h: Handle, tokens: number[], startPos?: number, opts?: ForwardOptions): Promise<Float32Array[]> {
    try {
      const out = await this.failover(h, tokens, startPos, opts);
      h.onOpen?.(true);
      return out;
    } catch (err) {
      h.onOpen?.(false);
      throw err;
    }
  }

  private async failover(h: Handle, tokens: number[], startPos?: number, opts?: ForwardOptions): Promise<Float32Array[]> {
    const order = failoverOrder(h.ranking, (r) => this.healthy(r));
    let first: unknown;
    for (const [i, r] of order.entries()) {
      h.release = await this.gates[r].acquire(h.signal);
      h.replica = r;
      h.inner = this.served[r].newSequence();
      h.onRoute?.(r, [...new Set([...h.ranking.slice(0, h.ranking.indexOf(r)), ...order.slice(0, i)])]);
      try {
        const out = await this.served[r].forward(h.inner, tokens, startPos, opts);
        h.opened = true;
        return out;
      } catch (err) {
        this.unbind(h);
        // Only the pipeline's own trouble moves a sequence; a cancelled request just ends.
        if (!(err instanceof ShardError) || h.signal?.aborted) throw err;
        this.failedAt[r] = this.now();
        first ??= err;
      }
    }
    throw first;
  }

  private unbind(h: Handle): void {
    if (h.replica !== undefined && h.inner !== undefined) this.served[h.replica].releaseSequence?.(h.inner);
    h.inner = undefined;
    h.release?.();
    h.release = undefined;
  }
}
