/**
 * The coordinator's engine: the same `Engine` the API and the generator use, with
 * the forward pass done by shards. forward(seq, tokens, startPos):
 *
 *   embedding rows (EmbeddingRows: range reads, cached) → hidden [n × H]
 *   → each layer shard in order (hub and spoke: the coordinator sends, the shard answers)
 *   → the head shards in parallel, on the positions whose logits are wanted → logits, concatenated
 *
 * A shard that lost the sequence (isolate recycled, LRU-evicted, link broken and reopened)
 * answers "unknown"; the coordinator then re-runs the sequence's whole prefix from position 0
 * through every layer shard (rewinding costs nothing: forwardLayers rewrites positions from
 * startPos) — the client only sees latency. The sequence keeps its token history for that.
 */
import type { Engine } from "../model/engine";
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
  /** Ends what this link holds open; called only from the request that is using it (recovery). */
  close(): void;
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
  /** forward() calls, frames sent, prefix re-runs. */
  forwards: number;
  frames: number;
  recoveries: number;
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

export class ShardedEngine implements Engine {
  readonly name: string;
  readonly config: { vocabSize: number; contextLength: number; hiddenSize: number };
  readonly stats: ShardedStats = { forwards: 0, frames: 0, recoveries: 0 };
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

  async forward(seqArg: unknown, tokens: number[], startPos?: number, opts: { allLogits?: boolean } = {}): Promise<Float32Array[]> {
    const seq = seqArg as ShardedSequence;
    if (!seq || typeof seq.id !== "string" || !Array.isArray(seq.tokens)) throw new TypeError("not a sequence of this engine (use engine.newSequence())");
    const { vocabSize, contextLength } = this.config;
    const n = tokens.length;
    if (n === 0) throw new RangeError("forward: no tokens");
    for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`token id ${t} is outside the vocabulary (0..${vocabSize - 1})`);
    const pos = startPos ?? seq.tokens.length;
    if (pos > seq.tokens.length) throw new RangeError(`startPos ${pos} is past the ${seq.tokens.length} positions fed`);
    if (pos + n > contextLength) throw new RangeError(`positions up to ${pos + n} exceed the context length ${contextLength}`);
    this.stats.forwards++;

    let hidden: Float32Array | undefined;
    let from = pos;
    let feed = tokens;
    for (let attempt = 0; ; attempt++) {
      hidden = await this.embedding.rows(feed);
      const lost = await this.runLayers(seq.id, from, feed.length, hidden);
      if (lost === undefined) break;
      if (attempt >= MAX_RECOVERIES) throw new ShardError(`shard ${lost} keeps losing sequence ${seq.id}; gave up after ${MAX_RECOVERIES} prefix re-runs`);
      // Re-run everything before `pos` plus the new tokens, from position 0.
      this.stats.recoveries++;
      from = 0;
      feed = [...seq.tokens.slice(0, pos), ...tokens];
    }
    seq.tokens.length = pos;
    seq.tokens.push(...tokens);

    const H = this.config.hiddenSize;
    const offset = feed.length - n; // the caller's positions within what was fed
    const wanted = opts.allLogits ? Array.from({ length: n }, (_, i) => offset + i) : [offset + n - 1];
    const h = new Float32Array(wanted.length * H);
    wanted.forEach((p, i) => h.set(hidden.subarray(p * H, (p + 1) * H), i * H));
    return this.logits(seq.id, h, wanted.length);
  }

  /** Runs every layer shard in order; returns the index of a shard that lost the sequence, else undefined. */
  private async runLayers(seq: string, pos: number, n: number, hidden: Float32Array): Promise<number | undefined> {
    for (let i = 0; i < this.layerLinks.length; i++) {
      const { reply, payload } = await this.call(this.layerLinks[i], seq, { op: "run", seq, pos, n }, hidden, i);
      if (!reply.ok && "unknown" in reply) return i;
      hidden.set(payload);
    }
    return undefined;
  }

  private async logits(seq: string, hidden: Float32Array, n: number): Promise<Float32Array[]> {
    const V = this.config.vocabSize;
    const parts = await Promise.all(this.headLinks.map(({ link }, i) => this.call(link, seq, { op: "logits", n }, hidden, this.layerLinks.length + i)));
    const out = Array.from({ length: n }, () => new Float32Array(V));
    parts.forEach(({ payload }, i) => {
      const [r0, r1] = this.headLinks[i].rows;
      const rows = r1 - r0;
      for (let p = 0; p < n; p++) out[p].set(payload.subarray(p * rows, (p + 1) * rows), r0);
    });
    return out;
  }

  /** One frame to one shard. A broken link is reopened once (a new session); the shard then says what it lost. */
  private async call(link: ShardLink, seq: string, req: ShardRequest, payload: Float32Array | undefined, which: number): Promise<{ reply: ShardReply; payload: Float32Array }> {
    const frame = encodeFrame(req, payload);
    let raw: Uint8Array;
    try {
      this.stats.frames++;
      raw = await link.call(frame, seq);
    } catch (first) {
      link.close();
      try {
        this.stats.frames++;
        raw = await link.call(frame, seq);
      } catch (e) {
        throw new ShardError(`shard ${which} is unreachable: ${(e as Error).message} (first try: ${(first as Error).message})`);
      }
    }
    const { head, payload: out } = decodeFrame<ShardReply>(raw);
    if (!head.ok && "error" in head) {
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
