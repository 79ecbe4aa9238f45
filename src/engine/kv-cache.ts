/**
 * KV cache for the wasm engine: a pool of fixed-size blocks in WASM memory,
 * each holding `blockPositions` consecutive positions of one sequence for
 * every layer the engine holds. A sequence owns a table of blocks and takes
 * one more each time it crosses a block boundary, so a short request holds
 * only what it uses and the pool's budget is shared by however many
 * sequences fit in it.
 *
 * Storage is f16 (the attention kernel reads it directly), post-rotary K and
 * V. Inside a block, layer-major, then K/V, then kv head, positions
 * contiguous within a head:
 *
 *   block b, layer l, kv head j:  K at base + b·blockBytes + ((l'·2 + 0)·nKV + j)·P·hd·2   [P × hd] f16
 *                                 V at base + b·blockBytes + ((l'·2 + 1)·nKV + j)·P·hd·2   [P × hd] f16
 *
 * where l' = l − the first layer held and P = blockPositions. Why head-major:
 * decode attention reads one head's keys at every cached position, and
 * position-major rows (128 bytes every 4 KiB) are not followed by the
 * hardware prefetcher across pages: head-major reads measured 3–4× faster at
 * 130 positions on the 1.6B shape. A block's run of P positions per head is
 * P·hd·2 bytes (2 KiB at P = 16, hd = 64): long enough to stream.
 *
 * Blocks have reference counts. A block whose positions are all written holds
 * a known run of tokens after a known parent block, so it is recorded in the
 * prefix cache; a new sequence whose prompt starts with the same tokens takes
 * those blocks (reusePrefix) and computes only the rest. A block is written
 * only by a sequence that holds it alone: writing into a shared block (a
 * rewind into a shared prefix) copies it first, and writing into a cached
 * block takes it out of the cache. A block nobody holds stays cached until
 * the pool needs it (least recently released first).
 *
 * When no block is free and no cached block is idle, the least recently used
 * sequence that is not in the current step loses its blocks (it is evicted:
 * using it again throws SequenceEvictedError, and a shard re-runs its prefix).
 * Hosts that must never evict (the servers) admit requests against
 * `freeBlocks()` first.
 *
 * Cost per position = L × 2 × kvDim × 2 B; Stable LM 2 1.6B (L 24, kvDim
 * 2048): 192 KiB per position, 3 MiB per 16-position block. Pages never
 * written are never touched, so RSS grows with the positions used.
 */
import type { EngineStats } from "../model/engine";

export class SequenceEvictedError extends Error {
  override name = "SequenceEvictedError";
}

/** The pool has no block to give: every block is held by a sequence in the step. */
export class KVBudgetError extends Error {
  override name = "KVBudgetError";
}

/** A sequence handle: its blocks and how many positions each layer holds. */
export class WasmSequence {
  /** Positions cached per layer (layers of a shard may be the only ones filled). */
  readonly lengths: Int32Array;
  /** Block ids, in position order: block i holds positions i·P .. i·P + P − 1. */
  readonly blocks: number[] = [];
  /** The token at each position written so far, while known (a shard is handed hidden states, not tokens): the prefix cache's key. */
  tokens: number[] | null = [];
  /** @internal set when its blocks were taken or it was released. */
  evicted = false;
  /** @internal */
  lastUsed = 0;

  constructor(
    readonly pool: KVPool,
    numLayers: number,
  ) {
    this.lengths = new Int32Array(numLayers);
  }

  /** Positions cached in a layer. */
  length(layer = 0): number {
    return this.lengths[layer];
  }

  /** Forget positions ≥ n in every layer (the blocks stay; their positions are overwritten later). */
  truncate(n: number): void {
    if (!(n >= 0)) throw new RangeError(`truncate: bad length ${n}`);
    for (let l = 0; l < this.lengths.length; l++) this.lengths[l] = Math.min(this.lengths[l], n);
    if (this.tokens && this.tokens.length > n) this.tokens.length = n;
  }

  reset(): void {
    this.truncate(0);
  }

  /** Give the blocks back to the pool now (the handle is unusable afterwards). */
  release(): void {
    this.pool.release(this);
  }
}

export interface KVLayout {
  /** The first layer held; sequences index layers as the model does. */
  firstLayer: number;
  /** Layers held. */
  numLayers: number;
  numKVHeads: number;
  headDim: number;
  /** Positions one sequence may reach. */
  contextLength: number;
  /** Positions per block. */
  blockPositions: number;
  /** Blocks in the pool: the budget. */
  blocks: number;
  /**
   * What the weights are (their file's version or hash), when the host knows: every prefix-cache key
   * carries it, so a cached block can only ever be found for the weights that computed it.
   */
  modelIdentity?: string;
}

/** Bytes of one block. */
export function kvBlockBytes(l: Omit<KVLayout, "blocks" | "contextLength">): number {
  return l.numLayers * 2 * l.numKVHeads * l.blockPositions * l.headDim * 2;
}

/** Bytes of the whole pool. */
export function kvBytes(l: KVLayout): number {
  return l.blocks * kvBlockBytes(l);
}

export type KVStats = Required<EngineStats>["kv"];

export class KVPool {
  private readonly refs: Int32Array;
  private readonly free: number[];
  /** Prefix cache: parent block and the block's tokens → block; and each cached block's key. */
  private readonly byKey = new Map<string, number>();
  private readonly keyOf: (string | undefined)[];
  /** Cached blocks nobody holds, least recently released first (a Set keeps insertion order). */
  private readonly idle = new Set<number>();
  private readonly live = new Set<WasmSequence>();
  private clock = 0;
  private reused = { positions: 0, hits: 0 };
  /** Bytes of one block, and of one head's [P × hd] f16 run in it. */
  readonly blockBytes: number;
  readonly headBytes: number;

  constructor(
    readonly layout: KVLayout,
    /** Byte offset of the pool in WASM memory (`kvBytes(layout)` bytes). */
    readonly base: number,
  ) {
    if (layout.blocks < 1) throw new RangeError("the KV pool needs at least one block");
    this.refs = new Int32Array(layout.blocks);
    this.free = Array.from({ length: layout.blocks }, (_, i) => layout.blocks - 1 - i);
    this.keyOf = new Array(layout.blocks).fill(undefined);
    this.blockBytes = kvBlockBytes(layout);
    this.headBytes = layout.blockPositions * layout.headDim * 2;
  }

  get stats(): KVStats {
    const used = this.layout.blocks - this.free.length - this.idle.size;
    const identity = this.layout.modelIdentity === undefined ? {} : { modelIdentity: this.layout.modelIdentity };
    return { blocks: this.layout.blocks, blockPositions: this.layout.blockPositions, used, cached: this.idle.size, free: this.free.length, reusedPositions: this.reused.positions, prefixHits: this.reused.hits, ...identity };
  }

  /** Blocks a new request could get now without evicting anyone. */
  freeBlocks(): number {
    return this.free.length + this.idle.size;
  }

  /** Blocks that `positions` positions take. */
  blocksFor(positions: number): number {
    return Math.ceil(positions / this.layout.blockPositions);
  }

  /** A new, empty sequence; it takes blocks as it is written. */
  acquire(): WasmSequence {
    const seq = new WasmSequence(this, this.layout.firstLayer + this.layout.numLayers);
    seq.lastUsed = ++this.clock;
    this.live.add(seq);
    return seq;
  }

  release(seq: WasmSequence): void {
    if (seq.pool !== this) throw new Error("release: sequence belongs to another engine");
    if (!seq.evicted) this.drop(seq);
    seq.evicted = true;
  }

  /** Checks the handle is live and marks it used now. */
  use(seq: unknown): WasmSequence {
    if (!(seq instanceof WasmSequence) || seq.pool !== this) throw new TypeError("not a sequence of this engine (use engine.newSequence())");
    if (seq.evicted) {
      throw new SequenceEvictedError(
        `sequence evicted or released: its KV blocks were given to other sequences (a pool of ${this.layout.blocks} blocks of ${this.layout.blockPositions} positions; raise the KV budget to keep more alive)`,
      );
    }
    seq.lastUsed = ++this.clock;
    return seq;
  }

  /**
   * Makes positions [pos0, pos0 + n) of `seq` writable: blocks up to there
   * exist and are held by `seq` alone, and none of them is in the prefix
   * cache any more. `step` are the sequences of the current step, never
   * evicted to make room. Gets every block it needs before it changes
   * anything, so a KVBudgetError leaves the sequence as it was.
   */
  prepareWrite(seq: WasmSequence, pos0: number, n: number, step: ReadonlySet<WasmSequence>): void {
    const P = this.layout.blockPositions;
    const first = Math.floor(pos0 / P);
    const last = Math.floor((pos0 + n - 1) / P);
    let need = Math.max(0, last + 1 - seq.blocks.length);
    for (let i = first; i < Math.min(last + 1, seq.blocks.length); i++) if (this.refs[seq.blocks[i]] > 1) need++;
    this.makeRoom(need, step);
    for (let i = first; i <= last; i++) {
      if (i === seq.blocks.length) {
        seq.blocks.push(this.take());
        continue;
      }
      const b = seq.blocks[i];
      if (this.refs[b] > 1) {
        const copy = this.take();
        new Uint8Array(this.memoryOf()).copyWithin(this.blockAddr(copy), this.blockAddr(b), this.blockAddr(b) + this.blockBytes);
        this.refs[b]--;
        seq.blocks[i] = copy;
      } else this.uncache(b);
    }
  }

  /** After a write that reached position `upto` in every layer: the blocks it filled join the prefix cache. */
  recordPrefix(seq: WasmSequence, upto: number): void {
    const tokens = seq.tokens;
    if (!tokens || tokens.length < upto) return;
    const P = this.layout.blockPositions;
    for (let i = 0; (i + 1) * P <= upto; i++) {
      const b = seq.blocks[i];
      if (this.keyOf[b] !== undefined) continue;
      if (i > 0 && this.keyOf[seq.blocks[i - 1]] === undefined) return; // its parent is not cached: no chain to hang it on
      const key = this.keyFor(i === 0 ? -1 : seq.blocks[i - 1], tokens, i);
      if (this.byKey.has(key)) return; // another sequence computed the same block first: its chain continues there, not here
      this.byKey.set(key, b);
      this.keyOf[b] = key;
    }
  }

  /**
   * A new sequence starts with the cached blocks that hold the start of
   * `prompt`; returns how many positions it now holds. At least the prompt's
   * last token is always left to compute, since its logits are wanted.
   */
  reusePrefix(seqArg: unknown, prompt: readonly number[]): number {
    const seq = this.use(seqArg);
    if (seq.blocks.length > 0 || seq.lengths.some((n) => n > 0)) throw new Error("reusePrefix: the sequence is not empty");
    if (seq.lengths.length !== this.layout.numLayers || this.layout.firstLayer !== 0) return 0; // a shard caches no prefixes
    const P = this.layout.blockPositions;
    let parent = -1;
    let n = 0;
    while ((n + P) < prompt.length) {
      const b = this.byKey.get(this.keyFor(parent, prompt, n / P));
      if (b === undefined) break;
      this.hold(b);
      seq.blocks.push(b);
      parent = b;
      n += P;
    }
    seq.lengths.fill(n);
    seq.tokens = prompt.slice(0, n);
    if (n > 0) {
      this.reused.positions += n;
      this.reused.hits++;
    }
    return n;
  }

  /** Byte offset of K (which = 0) or V (which = 1) of kv head 0 of a layer inside a block; head j is j·headBytes further. */
  offset(layer: number, which: 0 | 1): number {
    return ((layer - this.layout.firstLayer) * 2 + which) * this.layout.numKVHeads * this.headBytes;
  }

  blockAddr(b: number): number {
    return this.base + b * this.blockBytes;
  }

  /** The memory the blocks live in (set by the engine; copies on write need it). */
  memory: WebAssembly.Memory | undefined;

  private memoryOf(): ArrayBuffer {
    if (!this.memory) throw new Error("KVPool: no memory attached");
    return this.memory.buffer as ArrayBuffer;
  }

  private keyFor(parent: number, tokens: readonly number[], block: number): string {
    const P = this.layout.blockPositions;
    return `${this.layout.modelIdentity ?? ""}|${parent}:${tokens.slice(block * P, block * P + P).join(",")}`;
  }

  private hold(b: number): void {
    this.refs[b]++;
    this.idle.delete(b);
  }

  /** A block for the caller alone (makeRoom ensured there is one). */
  private take(): number {
    let b = this.free.pop();
    if (b === undefined) {
      b = this.idle.values().next().value as number;
      this.idle.delete(b);
      this.uncache(b);
    }
    this.refs[b] = 1;
    return b;
  }

  private uncache(b: number): void {
    const key = this.keyOf[b];
    if (key === undefined) return;
    this.byKey.delete(key);
    this.keyOf[b] = undefined;
  }

  /** Ensures `n` blocks can be taken, evicting least recently used sequences outside the step if it must. */
  private makeRoom(n: number, step: ReadonlySet<WasmSequence>): void {
    while (this.freeBlocks() < n) {
      let victim: WasmSequence | undefined;
      for (const s of this.live) if (!step.has(s) && s.blocks.length > 0 && (!victim || s.lastUsed < victim.lastUsed)) victim = s;
      if (!victim) {
        throw new KVBudgetError(
          `the KV cache is full: ${n} more blocks of ${this.layout.blockPositions} positions are needed and all ${this.layout.blocks} are held by the sequences of this step (raise the KV budget or run fewer at once)`,
        );
      }
      this.drop(victim);
      victim.evicted = true;
    }
  }

  private drop(seq: WasmSequence): void {
    this.live.delete(seq);
    for (const b of seq.blocks) {
      if (--this.refs[b] > 0) continue;
      if (this.keyOf[b] !== undefined) this.idle.add(b);
      else this.free.push(b);
    }
    seq.blocks.length = 0;
  }
}
