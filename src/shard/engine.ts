/**
 * The coordinator's engine: the same `Engine` the API and the generator use, with
 * the forward pass done by shards. A step (forwardBatch: one or many sequences, each its own
 * tokens and positions):
 *
 *   embedding rows (EmbeddingRows: range reads, cached) → hidden [Σn × H]
 *   → each layer shard in order, one `run` frame with every sequence's rows (hub and spoke: the
 *     coordinator sends, the shard answers; the shard reads its weights once for all of them)
 *   → the head shards in parallel, one `logits` frame with the rows whose logits are wanted
 *   → logits, concatenated and handed back per sequence
 *
 * A shard that lost a sequence (isolate recycled, LRU-evicted, link broken and reopened) answers
 * "unknown" for that part; the coordinator then re-runs that sequence's whole prefix from
 * position 0 through every layer shard (rewinding costs nothing: the shard rewrites positions from
 * its start) while the other sequences go on — the client only sees latency. Each sequence keeps
 * its token history for that.
 */
import type { BatchEntry, Engine, ForwardOptions, StepOptions } from "../model/engine";
import type { ShardPlan } from "./plan";
import { decodeFrame, encodeFrame, type ShardReply, type ShardRequest } from "./protocol";

/** One shard, as the coordinator reaches it. */
export interface ShardLink {
  /**
   * One request frame → its reply frame. Rejects when the transport broke. `scope` is the
   * sequence the frame belongs to: one sequence is one request, so what a link holds open (a
   * stream session) is opened, used and closed by one request only.
   */
  call(frame: Uint8Array, scope: string): Promise<Uint8Array>;
  /** Ends what this link holds open for `scope`; called only from the request that is using it (recovery). */
  close(scope: string): void;
  /** `scope`'s sequence is released: drop what is held for it without touching it (it may be another request's I/O object). */
  forget?(scope: string): void;
  /** Transport invocations made so far (RPC calls / sessions opened): what the platform counts. */
  readonly invocations: number;
}

/** Embedding rows for token ids → f32 [n × H]. */
export interface EmbeddingRows {
  rows(tokens: readonly number[]): Promise<Float32Array>;
}

export class ShardError extends Error {
  override name = "ShardError";
}

export interface ShardedSequence {
  readonly id: string;
  /** Tokens fed so far, by position (for re-running the prefix). */
  tokens: number[];
}

export interface ShardedStats {
  /** Sequences fed (one per batch entry), frames sent, prefix re-runs, batched steps. */
  forwards: number;
  frames: number;
  recoveries: number;
  steps: number;
}

/** A shard's last failed load, as its reply told it (/health: sharding.shard_failures). */
export interface ShardFailure {
  shard: number;
  script: string;
  reason: string;
  /** Loads that shard's instance has made (a shard that remembers an integrity failure makes no more until its objects change). */
  attempts: number;
  /** When the coordinator was told (ms since the epoch). */
  at: number;
}

const MAX_RECOVERIES = 3;

/** One sequence's part of a step, as the coordinator feeds it. */
interface StepPart {
  seq: ShardedSequence;
  /** The caller's tokens and their first position. */
  tokens: number[];
  pos: number;
  allLogits: boolean;
  /** What is fed to the layer shards: the caller's tokens from `pos`, or after a lost sequence its whole prefix from 0. */
  from: number;
  feed: number[];
  hidden: Float32Array;
}

export class ShardedEngine implements Engine {
  readonly name: string;
  readonly config: { vocabSize: number; contextLength: number; hiddenSize: number };
  readonly stats: ShardedStats = { forwards: 0, frames: 0, recoveries: 0, steps: 0 };
  /** Per shard index, the last load failure it reported; dropped when it answers again. */
  readonly shardFailures = new Map<number, ShardFailure>();
  private readonly layerLinks: ShardLink[];
  private readonly headLinks: { link: ShardLink; rows: [number, number] }[];
  private counter = 0;

  constructor(
    readonly plan: ShardPlan,
    readonly links: ShardLink[],
    readonly embedding: EmbeddingRows,
  ) {
    if (links.length !== plan.shards.length) throw new Error(`${links.length} links for ${plan.shards.length} shards`);
    const c = plan.model.config;
    this.config = { vocabSize: c.vocabSize, contextLength: plan.contextLength, hiddenSize: c.hiddenSize };
    this.layerLinks = plan.shards.filter((s) => s.kind === "layers").map((s) => links[s.index]);
    this.headLinks = plan.shards.filter((s) => s.kind === "head").map((s) => ({ link: links[s.index], rows: s.rows! }));
    this.name = `sharded (${this.layerLinks.length} layer + ${this.headLinks.length} head shards, budget ${(plan.budgetBytes / 2 ** 20).toFixed(0)} MiB each)`;
  }

  /** Transport invocations so far, over all shards. */
  get invocations(): number {
    return this.links.reduce((a, l) => a + l.invocations, 0);
  }

  newSequence(): ShardedSequence {
    // Unique across coordinator isolates: shards are shared by all of them.
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}-${++this.counter}`;
    return { id, tokens: [] };
  }

  /** Its request no longer drives steps: the links drop the sessions it opened (workerd ends them with the request). */
  releaseSequence(seq: unknown): void {
    const id = (seq as ShardedSequence | undefined)?.id;
    if (typeof id === "string") for (const l of this.links) l.forget?.(id);
  }

  /**
   * The caller's own embedding reads, in its own request (a batching scheduler calls this there
   * before the call joins a step): they are its subrequests. The rows land in the isolate's cache,
   * where the step, run in the driver's request, finds them.
   */
  async prepare(_seq: unknown, tokens: readonly number[]): Promise<void> {
    await this.embedding.rows(tokens);
  }

  async forward(seq: unknown, tokens: number[], startPos?: number, opts: ForwardOptions = {}): Promise<Float32Array[]> {
    return (await this.forwardBatch([{ seq, tokens, startPos, allLogits: opts.allLogits }]))[0];
  }

  /**
   * One step for several sequences: one `run` frame per layer shard carrying every sequence's
   * rows, then one `logits` frame per head shard with the rows whose logits are wanted. A sequence
   * a shard lost is re-run from position 0 alone (the others go on); each entry gets what
   * forward() would give it alone. Everything is checked before any frame is sent.
   */
  async forwardBatch(entries: readonly BatchEntry[], opts: StepOptions = {}): Promise<Float32Array[][]> {
    const parts = this.parts(entries);
    this.stats.forwards += parts.length;
    // The step runs where it is called, in the driver's request (the scheduler's polled mode), and
    // its frames go on that request's sessions, named by the driver.
    const driver = (opts.driver ?? parts[0].seq) as ShardedSequence;
    return this.step(parts, driver.id);
  }

  /** The entries as parts of a step, each checked (before any frame is sent). */
  private parts(entries: readonly BatchEntry[]): StepPart[] {
    const { vocabSize, contextLength } = this.config;
    const seen = new Set<ShardedSequence>();
    return entries.map((e, i): StepPart => {
      const seq = e.seq as ShardedSequence;
      const at = entries.length > 1 ? `batch entry ${i}: ` : "";
      if (!seq || typeof seq.id !== "string" || !Array.isArray(seq.tokens)) throw new TypeError(`${at}not a sequence of this engine (use engine.newSequence())`);
      if (seen.has(seq)) throw new RangeError(`${at}the same sequence twice in one step`);
      seen.add(seq);
      const n = e.tokens.length;
      if (n === 0) throw new RangeError(`${at || "forward: "}no tokens`);
      for (const t of e.tokens) if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`token id ${t} is outside the vocabulary (0..${vocabSize - 1})`);
      const pos = e.startPos ?? seq.tokens.length;
      if (pos > seq.tokens.length) throw new RangeError(`${at}startPos ${pos} is past the ${seq.tokens.length} positions fed`);
      if (pos + n > contextLength) throw new RangeError(`${at}positions up to ${pos + n} exceed the context length ${contextLength}`);
      return { seq, tokens: e.tokens, pos, allLogits: e.allLogits ?? false, from: pos, feed: e.tokens, hidden: new Float32Array(0) };
    });
  }

  /** The step itself, in the driver's request: `scope` names the sessions its frames go on. */
  private async step(parts: StepPart[], scope: string): Promise<Float32Array[][]> {
    this.stats.steps++;
    // Read by each caller already (prepare), so cached: no I/O here but on a cache miss.
    await Promise.all(parts.map(async (p) => (p.hidden = await this.embedding.rows(p.feed))));
    let pending = parts;
    for (let attempt = 0; pending.length; attempt++) {
      const lost = await this.runLayers(pending, scope);
      if (lost.length && attempt >= MAX_RECOVERIES) throw new ShardError(`shard ${lost[0].shard} keeps losing sequence ${lost[0].part.seq.id}; gave up after ${MAX_RECOVERIES} prefix re-runs`);
      // Re-run everything before `pos` plus the new tokens, from position 0, for the lost sequences only.
      for (const { part: p } of lost) {
        this.stats.recoveries++;
        p.from = 0;
        p.feed = [...p.seq.tokens.slice(0, p.pos), ...p.tokens];
      }
      // The prefix's rows are read in the driver's request: a rare re-run, mostly cached rows.
      await Promise.all(lost.map(async ({ part: p }) => (p.hidden = await this.embedding.rows(p.feed))));
      pending = lost.map((l) => l.part);
    }
    for (const p of parts) {
      p.seq.tokens.length = p.pos;
      p.seq.tokens.push(...p.tokens);
    }

    // The rows whose logits are wanted, every sequence's together: one logits frame per head shard.
    const H = this.config.hiddenSize;
    const wanted = parts.flatMap((p, i) => {
      const offset = p.feed.length - p.tokens.length; // the caller's positions within what was fed
      const rows = p.allLogits ? p.tokens.map((_, k) => offset + k) : [offset + p.tokens.length - 1];
      return rows.map((row) => ({ entry: i, row }));
    });
    const h = new Float32Array(wanted.length * H);
    wanted.forEach((w, k) => h.set(parts[w.entry].hidden.subarray(w.row * H, (w.row + 1) * H), k * H));
    const logits = await this.logits(scope, h, wanted.length);
    const out: Float32Array[][] = parts.map(() => []);
    wanted.forEach((w, k) => out[w.entry].push(logits[k]));
    return out;
  }

  /** Every layer shard in order, each one frame for all pending parts; returns the parts a shard lost (left out of the shards after it). */
  private async runLayers(pending: StepPart[], scope: string): Promise<{ part: StepPart; shard: number }[]> {
    const H = this.config.hiddenSize;
    const lost: { part: StepPart; shard: number }[] = [];
    let active = pending;
    for (let i = 0; i < this.layerLinks.length && active.length; i++) {
      const req: ShardRequest = { op: "run", parts: active.map((p) => ({ seq: p.seq.id, pos: p.from, n: p.feed.length })) };
      const payload = new Float32Array(active.reduce((a, p) => a + p.feed.length, 0) * H);
      let at = 0;
      for (const p of active) {
        payload.set(p.hidden, at);
        at += p.hidden.length;
      }
      const { reply, payload: out } = await this.call(this.layerLinks[i], scope, req, payload, i);
      const answers = reply.ok ? reply.parts : undefined;
      if (!answers || answers.length !== active.length || answers.some((a, k) => a.seq !== active[k].seq.id)) {
        throw new ShardError(`shard ${i} answered a run of ${active.length} sequences with ${answers ? `${answers.length} parts` : "no parts"}`);
      }
      const kept: StepPart[] = [];
      at = 0;
      answers.forEach((a, k) => {
        const p = active[k];
        if (!a.ok) return void lost.push({ part: p, shard: i });
        p.hidden.set(out.subarray(at, at + p.hidden.length));
        at += p.hidden.length;
        kept.push(p);
      });
      if (at !== out.length) throw new ShardError(`shard ${i} sent ${out.length} values for ${at / H} positions`);
      active = kept;
    }
    return lost;
  }

  private async logits(scope: string, hidden: Float32Array, n: number): Promise<Float32Array[]> {
    const V = this.config.vocabSize;
    const parts = await Promise.all(this.headLinks.map(({ link }, i) => this.call(link, scope, { op: "logits", n }, hidden, this.layerLinks.length + i)));
    const out = Array.from({ length: n }, () => new Float32Array(V));
    parts.forEach(({ payload }, i) => {
      const [r0, r1] = this.headLinks[i].rows;
      const rows = r1 - r0;
      if (payload.length !== n * rows) throw new ShardError(`shard ${this.layerLinks.length + i} sent ${payload.length} logits for ${n} positions of ${rows} rows`);
      for (let p = 0; p < n; p++) out[p].set(payload.subarray(p * rows, (p + 1) * rows), r0);
    });
    return out;
  }

  /** One frame to one shard. A broken link is reopened once (a new session); the shard then says what it lost. */
  private async call(link: ShardLink, scope: string, req: ShardRequest, payload: Float32Array | undefined, which: number): Promise<{ reply: ShardReply; payload: Float32Array }> {
    const frame = encodeFrame(req, payload);
    let raw: Uint8Array;
    try {
      this.stats.frames++;
      raw = await link.call(frame, scope);
    } catch (first) {
      link.close(scope);
      try {
        this.stats.frames++;
        raw = await link.call(frame, scope);
      } catch (e) {
        throw new ShardError(`shard ${which} is unreachable: ${(e as Error).message} (first try: ${(first as Error).message})`);
      }
    }
    const { head, payload: out } = decodeFrame<ShardReply>(raw);
    if (!head.ok) {
      if (head.load) this.shardFailures.set(which, { shard: which, script: this.plan.shards[which].script, reason: head.error, attempts: head.load.attempts, at: Date.now() });
      throw new ShardError(head.error);
    }
    this.shardFailures.delete(which);
    return { reply: head, payload: out };
  }
}

/** A link to a runtime in this process (Node tests, `edgelm` tools): one call = one invocation. */
export class LocalLink implements ShardLink {
  invocations = 0;
  constructor(private readonly target: { handle(frame: Uint8Array): Uint8Array }) {}
  async call(frame: Uint8Array): Promise<Uint8Array> {
    this.invocations++;
    return this.target.handle(frame);
  }
  close(): void {}
}
