/**
 * Admission to the engine. Up to `maxRunning` generations run at once (one
 * unless the host batches them, see step-scheduler.ts), and with a KV budget
 * each is admitted only while the blocks reserved for every running
 * generation — prompt + max_tokens each, rounded up to blocks — fit in it, so
 * a running generation never finds the cache full. Waiters queue in FIFO order
 * up to `maxWaiting`; past that a request is refused at once (429, code
 * queue_full) rather than held for minutes, and one that could never fit the
 * budget gets a 400 (code kv_budget_exceeded). A waiter whose signal aborts
 * leaves the queue.
 */
import { ApiError } from "./errors";

export type Release = () => void;

/** The KV cache the queue admits against: its blocks and their size in positions. */
export interface KVBudget {
  blocks: number;
  blockPositions: number;
}

export interface QueueCapacity {
  /** Generations running at once (default 1). */
  maxRunning?: number;
  kv?: KVBudget;
}

interface Waiter {
  cost: number;
  grant: (r: Release) => void;
  fail: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort: () => void;
}

export class GenerationQueue {
  private active = 0;
  private reserved = 0;
  private readonly waiting: Waiter[] = [];
  maxRunning = 1;
  kv: KVBudget | undefined;

  constructor(
    readonly maxWaiting = 16,
    /** Seconds suggested to refused clients. */
    readonly retryAfter = 1,
    capacity: QueueCapacity = {},
  ) {
    this.configure(capacity);
  }

  /** Sets the capacity (a host learns the KV budget once the model is loaded); waiters that now fit are admitted. */
  configure(capacity: QueueCapacity): void {
    const maxRunning = capacity.maxRunning ?? 1;
    if (!Number.isInteger(maxRunning) || maxRunning < 1) throw new RangeError(`maxRunning must be a positive integer, got ${capacity.maxRunning}`);
    this.maxRunning = maxRunning;
    this.kv = capacity.kv;
    this.next();
  }

  /** Requests waiting for the engine (not counting those running). */
  get depth(): number {
    return this.waiting.length;
  }

  /** Whether any generation is running. */
  get running(): boolean {
    return this.active > 0;
  }

  /** Generations running now, and the KV blocks reserved for them. */
  get load(): { running: number; reservedBlocks: number } {
    return { running: this.active, reservedBlocks: this.reserved };
  }

  /** Whether a request would have to wait now. */
  get saturated(): boolean {
    return this.active >= this.maxRunning || this.waiting.length > 0;
  }

  /** Whether a request that may write `positions` KV positions would be refused now with 429 (all generations running, the queue full). */
  wouldRefuse(positions = 0): boolean {
    const cost = this.kv ? Math.ceil(positions / this.kv.blockPositions) : 0;
    return (this.waiting.length > 0 || !this.fits(cost)) && this.waiting.length >= this.maxWaiting;
  }

  /**
   * Resolves with a release function once this request may use the engine.
   * `positions` (prompt + max_tokens) is what it may write to the KV cache.
   * Call the release exactly once.
   */
  acquire(signal?: AbortSignal, positions = 0): Promise<Release> {
    if (signal?.aborted) return Promise.reject(new ApiError(499, "request aborted", "invalid_request_error", null, "aborted"));
    const cost = this.kv ? Math.ceil(positions / this.kv.blockPositions) : 0;
    if (this.kv && cost > this.kv.blocks) {
      const have = this.kv.blocks * this.kv.blockPositions;
      return Promise.reject(
        new ApiError(400, `this request may need ${positions} positions of KV cache (prompt + max_tokens), more than the server's whole KV budget of ${have}; lower max_tokens or shorten the prompt`, "invalid_request_error", "max_tokens", "kv_budget_exceeded"),
      );
    }
    if (this.waiting.length === 0 && this.fits(cost)) return Promise.resolve(this.admit(cost));
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(
        new ApiError(429, `the server is busy: ${this.waiting.length} requests are already waiting for the engine; retry later`, "rate_limit_error", null, "queue_full", this.retryAfter),
      );
    }
    return new Promise<Release>((grant, fail) => {
      const entry: Waiter = {
        cost,
        grant,
        fail,
        signal,
        onAbort: () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          fail(new ApiError(499, "request aborted while queued", "invalid_request_error", null, "aborted"));
          this.next(); // the head may have changed
        },
      };
      signal?.addEventListener("abort", entry.onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private fits(cost: number): boolean {
    return this.active < this.maxRunning && (!this.kv || this.reserved + cost <= this.kv.blocks);
  }

  private admit(cost: number): Release {
    this.active++;
    this.reserved += cost;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.reserved -= cost;
      this.next();
    };
  }

  /** Grants waiters in order while the one at the head fits (no overtaking: a large request is not starved). */
  private next(): void {
    while (this.waiting.length && this.fits(this.waiting[0].cost)) {
      const w = this.waiting.shift()!;
      w.signal?.removeEventListener("abort", w.onAbort);
      w.grant(this.admit(w.cost));
    }
  }
}
