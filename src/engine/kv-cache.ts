/**
 * KV cache for the wasm engine: a fixed pool of slots in WASM memory, one per
 * live sequence, handed out by `KVPool.acquire` with least-recently-used reuse.
 *
 * Storage is f16 (the kernels' `attention_f16kv` reads it directly), post-rotary
 * K and V, head-major within a layer, positions contiguous within a head:
 *
 *   slot s, layer l, kv head j:  K at kvBase + (((s·L + l')·2 + 0)·nKV + j)·ctx·hd·2   [ctx × hd] f16
 *                                V at kvBase + (((s·L + l')·2 + 1)·nKV + j)·ctx·hd·2   [ctx × hd] f16
 *
 * where L is the number of layers the engine holds and l' = l − its first
 * layer (a shard holds layers [first, end) only).
 *
 * Why head-major: decode attention reads one head's keys for every cached
 * position. Position-major ([pos][nKV·hd]) makes that a 128-byte read every
 * 4 KiB, which the hardware prefetcher does not follow across pages; after the
 * weights have streamed through the cache it cost ~22 ms per token at 130
 * positions on the 1.6B shape (24 × 32 heads × 2 × 130 DRAM misses). Head-major
 * reads are sequential: measured 3–4× less. The engine calls the kernel once
 * per kv head with n_kv = 1, so the kernel's row stride is just hd.
 *
 * Cost per token = L × 2 × kvDim × 2 B; Stable LM 2 1.6B (L 24, kvDim 2048):
 * 192 KiB per token, 768 MiB per slot at a 4096-token context. Pages that were
 * never written are never touched, so RSS grows with the positions actually
 * used, not with the reserved context.
 *
 * Why a pool and not one cache per sequence object: memory cannot be freed in
 * wasm, only reused. The servers run one generation at a time and make a new
 * sequence per request, so reuse must be automatic: `newSequence()` takes a
 * free slot, else the least recently used one, whose previous owner is marked
 * evicted (using it afterwards throws rather than reading someone else's cache).
 */

export class SequenceEvictedError extends Error {
  override name = "SequenceEvictedError";
}

/** A sequence handle: which slot it owns and how many positions each layer holds. */
export class WasmSequence {
  /** Positions cached per layer (layers of a shard may be the only ones filled). */
  readonly lengths: Int32Array;
  /** @internal set when the slot is given to another sequence. */
  evicted = false;
  /** @internal */
  lastUsed = 0;

  constructor(
    readonly pool: KVPool,
    readonly slot: number,
    numLayers: number,
  ) {
    this.lengths = new Int32Array(numLayers);
  }

  /** Positions cached in a layer. */
  length(layer = 0): number {
    return this.lengths[layer];
  }

  /** Forget positions ≥ n in every layer (the bytes stay; they are overwritten later). */
  truncate(n: number): void {
    if (!(n >= 0)) throw new RangeError(`truncate: bad length ${n}`);
    for (let l = 0; l < this.lengths.length; l++) this.lengths[l] = Math.min(this.lengths[l], n);
  }

  reset(): void {
    this.truncate(0);
  }

  /** Give the slot back to the pool now (the handle is unusable afterwards). */
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
  /** Positions per slot. */
  contextLength: number;
  slots: number;
}

/** Bytes of the whole pool. */
export function kvBytes(l: KVLayout): number {
  return l.slots * l.numLayers * 2 * l.numKVHeads * l.contextLength * l.headDim * 2;
}

export class KVPool {
  private readonly owners: (WasmSequence | undefined)[];
  private clock = 0;
  /** Bytes of one head's [ctx × hd] f16 block. */
  readonly headBytes: number;

  constructor(
    readonly layout: KVLayout,
    /** Byte offset of the pool in WASM memory (`kvBytes(layout)` bytes). */
    readonly base: number,
  ) {
    this.owners = new Array(layout.slots).fill(undefined);
    this.headBytes = layout.contextLength * layout.headDim * 2;
  }

  /** A slot for a new sequence: a free one, else the least recently used (its owner is evicted). */
  acquire(): WasmSequence {
    let slot = this.owners.findIndex((o) => o === undefined);
    if (slot < 0) {
      slot = 0;
      for (let s = 1; s < this.owners.length; s++) if (this.owners[s]!.lastUsed < this.owners[slot]!.lastUsed) slot = s;
      this.owners[slot]!.evicted = true;
    }
    const seq = new WasmSequence(this, slot, this.layout.firstLayer + this.layout.numLayers);
    seq.lastUsed = ++this.clock;
    this.owners[slot] = seq;
    return seq;
  }

  release(seq: WasmSequence): void {
    if (seq.pool !== this) throw new Error("release: sequence belongs to another engine");
    if (this.owners[seq.slot] === seq) this.owners[seq.slot] = undefined;
    seq.evicted = true;
  }

  /** Checks the handle is live and marks it used now. */
  use(seq: unknown): WasmSequence {
    if (!(seq instanceof WasmSequence) || seq.pool !== this) throw new TypeError("not a sequence of this engine (use engine.newSequence())");
    if (seq.evicted) {
      throw new SequenceEvictedError(
        `sequence evicted: its KV slot was given to a newer sequence (pool of ${this.layout.slots}; raise the engine's "sequences" option to keep more alive)`,
      );
    }
    seq.lastUsed = ++this.clock;
    return seq;
  }

  /** Byte offset of K (which = 0) or V (which = 1) of kv head 0 of a layer in a slot; head j is j·headBytes further. */
  ptr(slot: number, layer: number, which: 0 | 1): number {
    return this.base + ((slot * this.layout.numLayers + layer - this.layout.firstLayer) * 2 + which) * this.layout.numKVHeads * this.headBytes;
  }
}
