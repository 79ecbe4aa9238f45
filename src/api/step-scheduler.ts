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
 * One exception, for time to first token: prompts whose rest fits in one step
 * (a new request's short prompt, a long one's last part) run in a step of
 * their own, before the decode rows. Beside them the decode rows would make
 * that step a decode step longer, and would get their tokens only at its end
 * anyway; alone, the prompts' first tokens come one decode step sooner. The
 * decode rows then get the next step whatever is waiting, so prompts arriving
 * one after another cannot starve them. Not with `keepDriver` (below): a step
 * of prompts only would be driven by a new request, which would open sessions
 * (one invocation per shard) that the decoding driver's steps need not.
 *
 * Before a step, the scheduler waits until every live sequence (made by
 * newSequence, not yet released) has a call waiting, or `gatherMs` have
 * passed since the first call arrived: a stream whose client reads slowly
 * does not hold the others up for longer than that.
 *
 * Two ways to hand a call its outcome, chosen by the host:
 * - direct (the default, Node): the step resolves each call's promise.
 * - polled (`pollMs`, workerd): a promise resolved in one request's context
 *   runs its continuation, and so its stream's writes, in that context, where
 *   workerd drops them; a request's timers die with it, and clearTimeout
 *   reaches only the current request's timers (a gather timer set in one
 *   request fires even after a step in another "cleared" it). So the step only
 *   records each outcome, and every waiting call looks for its own on a timer
 *   of its own, every `pollMs`. The same look runs a step that is due, so the
 *   steps need no timer of the scheduler's and go on whichever request ends.
 *   The only live sequence, when it drove the step, also wakes as the step
 *   ends: no other call can be waiting to look, and a look is a timer (~1.1
 *   ms in workerd, ~3% of a decode step on the 1.6B model).
 *   The step is run by one of its own members (never on behalf of a request
 *   with no row in it), the one that has run the fewest rows beyond its own:
 *   each caller's CPU time then stays near its own rows' share, within one
 *   step. With `keepDriver` (an engine whose step does I/O over sessions of
 *   the driver's request: the sharded coordinator) the last step's driver runs
 *   the next while it has a row in it, so its sessions stay open. The gather
 *   deadline counts the caller's looks, not the clock: a Worker's clock stands
 *   still while it computes.
 *
 *   The lost-step rule. A step may await I/O (frames to the shards) for as
 *   long as it takes, and the others keep looking meanwhile. Its driver keeps
 *   looking too, on its own timer in its own request, even once its own call
 *   has ended (released mid-step), until the step ends: so while the driver
 *   looks its request lives and the step's I/O can still complete, and the
 *   step is never taken as lost. A request that is stopped (its invocation
 *   killed, cancelled) loses its timers, so its looks stop: once
 *   LOST_STEP_LOOKS looks of the others have found the step running with no
 *   look of its driver between, the step is given up (a late end of it is
 *   ignored) and run again by the next look. A step that fails after its
 *   driver's sequence was released is given up the same way, not blamed on
 *   its entries: the failure may be that request's I/O being cancelled.
 *
 * Host-neutral: no Node or Workers APIs beyond setTimeout (and setImmediate
 * where the host has it, through yieldToEventLoop). A step that fails
 * is re-run one entry at a time, so only the calls that fail alone are
 * rejected (the engine refuses a bad batch before it touches any cache, and a
 * re-run rewinds each sequence to its own start).
 */
import { yieldToEventLoop } from "../generate/yield";
import type { BatchEntry, Engine, EngineStats, ForwardOptions, StepOptions } from "../model/engine";

export interface StepSchedulerOptions {
  /** Sequences per step (and the live sequences the host should allow). */
  maxBatch: number;
  /** Token rows per step, prompt parts included. */
  maxBatchTokens: number;
  /** Longest wait for live sequences to submit before a step runs without them (ms). */
  gatherMs?: number;
  /** Polled outcomes (above): each waiting call looks for its outcome, and runs a due step, every `pollMs`. Unset: direct. */
  pollMs?: number;
  /** Polled mode: the last step's driver runs the next while it has a row in it (above). */
  keepDriver?: boolean;
}

export type StepStats = Required<EngineStats>["batch"];

interface Call {
  seq: unknown;
  tokens: number[];
  /** Position of tokens[0]. */
  startPos: number;
  allLogits: boolean;
  into?: Float32Array;
  /** Tokens already fed by earlier steps (a prompt split over steps). */
  done: number;
  logits: Float32Array[];
  /** Set by the step that ends the call. */
  outcome?: { logits: Float32Array[] } | { error: unknown };
  /** Direct mode: wakes the caller. */
  settle?: () => void;
  /** Polled mode: the step count at this call's last look, looks since it changed, and looks that left a due step to its driver. */
  seenSteps: number;
  idle: number;
  deferred: number;
}

const DEFAULT_GATHER_MS = 5;
/** Polled mode: looks a member leaves a due step to the member chosen to run it, before running it itself (that one's request may be gone). */
const HANDOVER_LOOKS = 2;
/** Polled mode: looks of the others that find the same step running, with none of its driver's between, before it is taken as lost (the lost-step rule above). */
const LOST_STEP_LOOKS = 500;

export class StepScheduler implements Engine {
  readonly config: Engine["config"];
  private readonly waiting: Call[] = [];
  private readonly live = new Set<unknown>();
  /** Live sequences that have called forward (those a step waits for), and those that missed a gather deadline (not waited for until they call again). */
  private readonly active = new Set<unknown>();
  private readonly stalled = new Set<unknown>();
  /** Polled mode: rows each sequence's caller has run beyond its own rows (who runs the next step). */
  private readonly debt = new Map<unknown, number>();
  /** Sequences released during the step that holds them: freed in the engine once it ends. */
  private readonly releaseAfterStep = new Set<unknown>();
  /** Sequences whose call is in the engine's prepare (not yet waiting). */
  private readonly preparing = new Set<unknown>();
  private stepSeqs = new Set<unknown>();
  /** Polled mode: the call whose look runs the step now, and the sequence of the last step's driver. */
  private driverCall?: Call;
  private lastDriver?: unknown;
  private lostLooks = 0;
  /** The last step left waiting decode rows out for prompts (the next one takes them). */
  private lastPromptsOnly = false;
  /** Direct mode: a step is due and starts at the next macrotask. */
  private starting = false;
  /** The step running now (a step taken as lost and ending after all must not touch the calls). */
  private stepNo = 0;
  private running = false;
  /** The running step, whose end a lone driver also waits for (poll). */
  private stepDone?: Promise<void>;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly gatherMs: number;
  private counts = { steps: 0, rows: 0, sequences: 0, lost: 0 };

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
    if (opts.pollMs !== undefined && !(opts.pollMs > 0)) throw new RangeError(`pollMs must be a positive number of ms, got ${opts.pollMs}`);
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

  /** Safe at any time: a call of the sequence still waiting fails, and a step that holds it frees it when it ends. */
  releaseSequence(seq: unknown): void {
    if (!this.live.delete(seq)) return;
    this.active.delete(seq);
    this.stalled.delete(seq);
    this.debt.delete(seq);
    for (const call of this.waiting.filter((c) => c.seq === seq)) this.end(call, { error: new Error("the sequence was released while its forward call waited") });
    if (this.running && this.stepSeqs.has(seq)) this.releaseAfterStep.add(seq);
    else this.engine.releaseSequence?.(seq);
    if (this.opts.pollMs === undefined) this.schedule(); // the others may now be complete
  }

  forward(seq: unknown, tokens: number[], startPos?: number, opts: ForwardOptions = {}): Promise<Float32Array[]> {
    if (!this.live.has(seq)) return Promise.reject(new TypeError("not a live sequence of this scheduler (use newSequence(), and not after releaseSequence())"));
    if (this.waiting.some((c) => c.seq === seq) || this.preparing.has(seq)) return Promise.reject(new Error("this sequence already has a forward call waiting"));
    if (tokens.length === 0) return Promise.reject(new RangeError("forward: no tokens"));
    const pos = startPos ?? (seq as { length?: (l: number) => number }).length?.(0);
    if (pos === undefined) return Promise.reject(new TypeError("forward through the scheduler needs startPos for this engine's sequences"));
    const call: Call = { seq, tokens, startPos: pos, allLogits: opts.allLogits ?? false, into: opts.into, done: 0, logits: [], seenSteps: this.counts.steps, idle: 0, deferred: 0 };
    if (!this.engine.prepare) return this.enter(call);
    // The caller's own part, here in its own context, before the call can be in a step.
    this.preparing.add(seq);
    return this.engine
      .prepare(seq, tokens)
      .finally(() => this.preparing.delete(seq))
      .then(() => {
        if (!this.live.has(seq)) throw new Error("the sequence was released while its forward call waited");
        return this.enter(call);
      });
  }

  private enter(call: Call): Promise<Float32Array[]> {
    const { seq } = call;
    call.seenSteps = this.counts.steps;
    this.active.add(seq);
    this.stalled.delete(seq);
    this.waiting.push(call);
    if (this.opts.pollMs !== undefined) return this.poll(call, this.opts.pollMs);
    return new Promise<void>((settle) => {
      call.settle = settle;
      this.schedule();
    }).then(() => outcomeOf(call));
  }

  /** Polled mode: look now (the step may be due with this call), then every `ms`, in this caller's own context. */
  private async poll(call: Call, ms: number): Promise<Float32Array[]> {
    this.look(call);
    // A driver whose own call ended mid-step (released) still looks until its step ends: the lost-step rule.
    while (!call.outcome || this.driverCall === call) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const nextLook = new Promise((r) => (timer = setTimeout(r, ms)));
      // The only live sequence drove this step: no other call can be waiting to look, so it takes
      // its outcome when the step ends (the step is its own request's) if that comes before its next
      // look. It still looks meanwhile: a request arriving during a step that awaits I/O counts the
      // looks that keep the step from being taken as lost.
      if (this.driverCall === call && this.live.size === 1 && this.stepDone) await Promise.race([this.stepDone, nextLook]);
      else await nextLook;
      clearTimeout(timer);
      if (!call.outcome || this.driverCall === call) this.look(call);
    }
    return outcomeOf(call);
  }

  /** One look of a waiting call: runs the next step when it is due, this call is in it, and it is this call's turn to run one. */
  private look(call: Call): void {
    if (this.running) {
      // The driver's look: its request lives, and so may the step's I/O. Only the others' looks count.
      if (call === this.driverCall) this.lostLooks = 0;
      else if (++this.lostLooks >= LOST_STEP_LOOKS) this.giveUp();
      return;
    }
    if (call.outcome) return;
    if (call.seenSteps !== this.counts.steps) [call.seenSteps, call.idle] = [this.counts.steps, 0];
    else call.idle++;
    if (!this.ready()) {
      if (call.idle * this.opts.pollMs! < this.gatherMs) return;
      this.markStalled();
    }
    const rows = this.plan();
    if (!rows.some((r) => r.call === call)) return;
    const debtOf = (c: Call) => this.debt.get(c.seq) ?? 0;
    const kept = this.opts.keepDriver ? rows.find((r) => r.call.seq === this.lastDriver) : undefined;
    const driver = (kept ?? rows.reduce((a, b) => (debtOf(b.call) < debtOf(a.call) ? b : a))).call;
    if (driver !== call && call.deferred++ < HANDOVER_LOOKS) return;
    const total = rows.reduce((n, r) => n + r.take, 0);
    this.debt.set(call.seq, debtOf(call) + total);
    for (const r of rows) this.debt.set(r.call.seq, debtOf(r.call) - r.take);
    this.stepDone = this.step(rows, call);
  }

  /** The running step is taken as lost: its calls stay waiting for the next step, a late end of it is ignored. */
  private giveUp(): void {
    this.stepNo++;
    this.counts.lost++;
    this.endStep();
  }

  /** Every sequence that has called is back with its next call (or stalled), or the step is full. */
  private ready(): boolean {
    return this.waiting.length >= this.opts.maxBatch || [...this.active].every((s) => this.stalled.has(s) || this.waiting.some((c) => c.seq === s));
  }

  /** The gather deadline passed: those not back are not waited for until they call again. */
  private markStalled(): void {
    for (const s of this.active) if (!this.waiting.some((c) => c.seq === s)) this.stalled.add(s);
  }

  /** Entries for other batching callers: each as a call of its own. */
  async forwardBatch(entries: readonly BatchEntry[]): Promise<Float32Array[][]> {
    return Promise.all(entries.map((e) => this.forward(e.seq, e.tokens, e.startPos, { allLogits: e.allLogits, into: e.into })));
  }

  async close(): Promise<void> {
    await this.engine.close?.();
  }

  /** Direct mode: runs the next step now if it is due, or when the gather deadline passes. */
  private schedule(): void {
    if (this.running || this.starting || this.waiting.length === 0) return;
    const ready = [...this.live].every((s) => this.waiting.some((c) => c.seq === s)) || this.waiting.length >= this.opts.maxBatch;
    if (ready) {
      clearTimeout(this.timer);
      this.timer = undefined;
      // Not in this call's own stack: a step computes synchronously for its whole length, and
      // what the caller has queued (another stream's SSE write, a token just made) would wait it
      // out. One macrotask later the step takes whatever has arrived by then.
      this.starting = true;
      yieldToEventLoop().then(() => {
        this.starting = false;
        if (!this.running && this.waiting.length) void this.step();
      });
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
    const decode = this.waiting.filter((c) => restOf(c) === 1);
    const prompt = this.waiting.filter((c) => restOf(c) > 1);
    const ending = prompt.filter((c) => restOf(c) <= maxBatchTokens);
    const promptsFirst = decode.length > 0 && ending.length > 0 && !this.lastPromptsOnly && !this.opts.keepDriver;
    const rows: { call: Call; take: number }[] = [];
    let left = maxBatchTokens;
    for (const call of promptsFirst ? ending : [...decode, ...prompt]) {
      if (rows.length === maxBatch || left === 0) break;
      const take = Math.min(left, restOf(call));
      rows.push({ call, take });
      left -= take;
    }
    return rows;
  }

  /** Runs `rows` as one step; `driver` (polled mode) is the call whose look runs it, in its caller's context. */
  private async step(rows = this.plan(), driver?: Call): Promise<void> {
    const no = ++this.stepNo;
    this.running = true;
    this.driverCall = driver;
    this.lastDriver = driver?.seq;
    this.lostLooks = 0;
    this.stepSeqs = new Set(rows.map((r) => r.call.seq));
    // Recorded once the step ends, so a step given up as lost is planned again the same way.
    const promptsOnly = rows.every((r) => restOf(r.call) > 1) && this.waiting.some((c) => restOf(c) === 1);
    for (const c of this.waiting) c.deferred = 0;
    try {
      const entries: BatchEntry[] = rows.map(({ call, take }) => ({
        seq: call.seq,
        tokens: call.tokens.slice(call.done, call.done + take),
        startPos: call.startPos + call.done,
        allLogits: call.allLogits,
        into: call.into,
      }));
      const opts = driver && { driver: driver.seq };
      let results: (Float32Array[] | { error: unknown })[];
      try {
        results = await this.engine.forwardBatch!(entries, opts);
      } catch (e) {
        if (no !== this.stepNo) return;
        if (driver && !this.live.has(driver.seq)) return this.giveUp();
        if (entries.length === 1) results = [{ error: e }];
        else results = await Promise.all(entries.map((entry) => this.alone(entry, opts)));
      }
      if (no !== this.stepNo) return;
      this.counts.steps++;
      this.counts.sequences += rows.length;
      this.counts.rows += entries.reduce((n, e) => n + e.tokens.length, 0);
      rows.forEach(({ call, take }, i) => {
        const r = results[i];
        // Released during the step: its call has already failed.
        if (call.outcome) return;
        if (!Array.isArray(r)) return this.end(call, { error: r.error });
        call.done += take;
        const last = call.done === call.tokens.length;
        // A part that does not end the call: its last row's logits are not the call's.
        if (call.allLogits || last) call.logits.push(...r);
        if (last) this.end(call, { logits: call.logits });
      });
    } finally {
      if (no === this.stepNo) {
        this.lastPromptsOnly = promptsOnly;
        this.endStep();
      }
    }
  }

  private endStep(): void {
    this.running = false;
    this.driverCall = undefined;
    for (const seq of this.releaseAfterStep) this.engine.releaseSequence?.(seq);
    this.releaseAfterStep.clear();
    this.stepSeqs.clear();
    if (this.opts.pollMs === undefined) this.schedule();
  }

  /** One entry as a step of its own; its failure as a value. */
  private async alone(entry: BatchEntry, opts: StepOptions | undefined): Promise<Float32Array[] | { error: unknown }> {
    try {
      return (await this.engine.forwardBatch!([entry], opts))[0];
    } catch (error) {
      return { error };
    }
  }

  private end(call: Call, outcome: NonNullable<Call["outcome"]>): void {
    const i = this.waiting.indexOf(call);
    if (i >= 0) this.waiting.splice(i, 1);
    call.outcome = outcome;
    call.settle?.();
  }
}

/** Rows of a call not yet fed: 1 for a decode call, more for a prompt (or its rest). */
function restOf(call: Call): number {
  return call.tokens.length - call.done;
}

function outcomeOf(call: Call): Float32Array[] {
  const o = call.outcome!;
  if ("error" in o) throw o.error;
  return o.logits;
}
