/**
 * Continuous batching: many generations share each forward step of one
 * engine. Every running generation calls forward() as it would alone (its
 * prompt in chunks, then one token at a time); the scheduler gathers the calls
 * that are waiting and runs them as one batched step (Engine.forwardBatch),
 * so each weight block is read once for all of them. A generation that starts
 * joins at the next step; one that ends leaves at once.
 *
 * A step is a plan of rows, at most `maxBatchTokens` of them from at most
 * `maxBatch` sequences: every waiting decode call (one row each) first, in
 * arrival order, then prompt rows in arrival order until the rows run out. A
 * prompt longer than what is left of a step is fed over several steps, each
 * step's part in place, so a long prompt never holds up the streams already
 * decoding: they get a row in every step of it.
 *
 * Before a step, the scheduler waits until every live sequence (made by
 * newSequence, not yet released) has a call waiting, or `gatherMs` have
 * passed since the first call arrived: a stream whose client reads slowly
 * does not hold the others up for longer than that.
 *
 * Host-neutral: no Node or Workers APIs beyond setTimeout. A step that fails
 * is re-run one entry at a time, so only the calls that fail alone are
 * rejected (the engine refuses a bad batch before it touches any cache, and a
 * re-run rewinds each sequence to its own start).
 */
import type { BatchEntry, Engine, EngineStats } from "../model/engine";

export interface StepSchedulerOptions {
  /** Sequences per step (and the live sequences the host should allow). */
  maxBatch: number;
  /** Token rows per step, prompt parts included. */
  maxBatchTokens: number;
  /** Longest wait for live sequences to submit before a step runs without them (ms). */
  gatherMs?: number;
}

export type StepStats = Required<EngineStats>["batch"];

interface Call {
  seq: unknown;
  tokens: number[];
  /** Position of tokens[0]. */
  startPos: number;
  allLogits: boolean;
  /** Tokens already fed by earlier steps (a prompt split over steps). */
  done: number;
  logits: Float32Array[];
  resolve(logits: Float32Array[]): void;
  reject(e: unknown): void;
}


const DEFAULT_GATHER_MS = 5;

export class StepScheduler implements Engine {
  readonly config: Engine["config"];
  private readonly waiting: Call[] = [];
  private readonly live = new Set<unknown>();
  private running = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly gatherMs: number;
  private counts = { steps: 0, rows: 0, sequences: 0 };

  constructor(
    readonly engine: Engine,
    readonly opts: StepSchedulerOptions,
  ) {
    if (!engine.forwardBatch) throw new TypeError(`the ${engine.name} engine cannot run batched steps`);
    const { maxBatch, maxBatchTokens } = opts;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (!Number.isInteger(maxBatchTokens) || maxBatchTokens < maxBatch) {
      throw new RangeError(`maxBatchTokens must be an integer ≥ maxBatch (${maxBatch}), got ${maxBatchTokens}`);
    }
    this.gatherMs = opts.gatherMs ?? DEFAULT_GATHER_MS;
    this.config = engine.config;
  }

  get name(): string {
    return `${this.engine.name}; batches of up to ${this.opts.maxBatch} sequences, ${this.opts.maxBatchTokens} rows`;
  }

  get batchStats(): StepStats {
    const { maxBatch, maxBatchTokens } = this.opts;
    return { ...this.counts, live: this.live.size, waiting: this.waiting.length, maxBatch, maxBatchTokens };
  }

  liveStats(): EngineStats {
    return { ...this.engine.liveStats?.(), batch: this.batchStats };
  }

  newSequence(): unknown {
    const seq = this.engine.newSequence();
    this.live.add(seq);
    return seq;
  }

  reusePrefix(seq: unknown, prompt: readonly number[]): number {
    return this.engine.reusePrefix?.(seq, prompt) ?? 0;
  }

  releaseSequence(seq: unknown): void {
    this.live.delete(seq);
    this.engine.releaseSequence?.(seq);
    this.schedule(); // the others may now be complete
  }

  forward(seq: unknown, tokens: number[], startPos?: number, opts: { allLogits?: boolean } = {}): Promise<Float32Array[]> {
    if (!this.live.has(seq)) return Promise.reject(new TypeError("not a live sequence of this scheduler (use newSequence(), and not after releaseSequence())"));
    if (this.waiting.some((c) => c.seq === seq)) return Promise.reject(new Error("this sequence already has a forward call waiting"));
    if (tokens.length === 0) return Promise.reject(new RangeError("forward: no tokens"));
    return new Promise((resolve, reject) => {
      const pos = startPos ?? (seq as { length?: (l: number) => number }).length?.(0);
      if (pos === undefined) return reject(new TypeError("forward through the scheduler needs startPos for this engine's sequences"));
      this.waiting.push({ seq, tokens, startPos: pos, allLogits: opts.allLogits ?? false, done: 0, logits: [], resolve, reject });
      this.schedule();
    });
  }

  /** Entries for other batching callers: each as a call of its own. */
  async forwardBatch(entries: readonly BatchEntry[]): Promise<Float32Array[][]> {
    return Promise.all(entries.map((e) => this.forward(e.seq, e.tokens, e.startPos, { allLogits: e.allLogits })));
  }

  async close(): Promise<void> {
    await this.engine.close?.();
  }

  private schedule(): void {
    if (this.running || this.waiting.length === 0) return;
    const ready = [...this.live].every((s) => this.waiting.some((c) => c.seq === s)) || this.waiting.length >= this.opts.maxBatch;
    if (ready) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.step();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.running && this.waiting.length) void this.step();
      }, this.gatherMs);
    }
  }

  /** The next step's rows: decode calls first, then prompt parts, each call at most once. */
  plan(): { call: Call; take: number }[] {
    const { maxBatch, maxBatchTokens } = this.opts;
    const decode = this.waiting.filter((c) => c.tokens.length - c.done === 1);
    const prompt = this.waiting.filter((c) => c.tokens.length - c.done > 1);
    const rows: { call: Call; take: number }[] = [];
    let left = maxBatchTokens;
    for (const call of [...decode, ...prompt]) {
      if (rows.length === maxBatch || left === 0) break;
      const take = Math.min(left, call.tokens.length - call.done);
      rows.push({ call, take });
      left -= take;
    }
    return rows;
  }

  private async step(): Promise<void> {
    this.running = true;
    try {
      const rows = this.plan();
      const entries: BatchEntry[] = rows.map(({ call, take }) => ({
        seq: call.seq,
        tokens: call.tokens.slice(call.done, call.done + take),
        startPos: call.startPos + call.done,
        allLogits: call.allLogits,
      }));
      let results: (Float32Array[] | { error: unknown })[];
      try {
        results = await this.engine.forwardBatch!(entries);
      } catch (e) {
        if (entries.length === 1) results = [{ error: e }];
        else results = await Promise.all(entries.map((entry) => this.alone(entry)));
      }
      this.counts.steps++;
      this.counts.sequences += rows.length;
      this.counts.rows += entries.reduce((n, e) => n + e.tokens.length, 0);
      rows.forEach(({ call, take }, i) => {
        const r = results[i];
        if (!Array.isArray(r)) {
          this.settle(call);
          call.reject(r.error);
          return;
        }
        call.done += take;
        const last = call.done === call.tokens.length;
        // A part that does not end the call: its last row's logits are not the call's.
        if (call.allLogits || last) call.logits.push(...r);
        if (last) {
          this.settle(call);
          call.resolve(call.logits);
        }
      });
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  /** One entry as a step of its own; its failure as a value. */
  private async alone(entry: BatchEntry): Promise<Float32Array[] | { error: unknown }> {
    try {
      return (await this.engine.forwardBatch!([entry]))[0];
    } catch (error) {
      return { error };
    }
  }

  private settle(call: Call): void {
    this.waiting.splice(this.waiting.indexOf(call), 1);
  }
}
