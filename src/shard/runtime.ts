/**
 * One shard of a plan, host-neutral (a Durable Object in workerd, or in-process in Node): loads
 * only its tensors, by range, into a WebAssembly.Memory whose maximum is the plan's page budget,
 * keeps per-sequence KV for its layers (paged blocks under the plan's budget; the least recently
 * used sequence outside the step gives way when they run out), and answers protocol frames. A
 * `run` frame is a batched step: one pass of the layers over the rows of all its sequences.
 *
 * The forward pass is the engine's own (src/engine): the shard's engine is the single-isolate
 * engine placing only the shard's part of the model (./shard-part.ts: its layers, or the final
 * norm and a slice of the head). So a shard computes exactly what the single-isolate engine
 * computes for those layers/rows (same kernels, same code, bit for bit), and a speed-up in
 * src/engine reaches the shards without a second copy of the forward pass to maintain.
 */
import { placeEngine, SequenceEvictedError, type KernelChoice, type WasmEngine, type WasmSequence } from "../engine/index";
import { loadKernels } from "../engine/kernels";
import { Arena, WASM_PAGE } from "../engine/arena";
import { StreamSource } from "../gguf/source";
import { hashPrefix, IntegrityError, ManifestMissingError, sha256Hex } from "../gguf/manifest";
import type { ShardPlan, ShardSpec, TensorRef } from "./plan";
import { shardPart } from "./shard-part";
import { decodeFrame, encodeFrame, runParts, type PartReply, type ShardInfo, type ShardReply, type ShardRequest } from "./protocol";

/** Byte ranges of the one GGUF: R2 `get(key, {range})` in a Worker, a file in Node. */
export interface RangeSource {
  read(offset: number, length: number): Promise<ReadableStream<Uint8Array>>;
}

/** The shard's memory would exceed its plan: the production isolate would have been killed here. */
export class ShardBudgetError extends Error {
  override name = "ShardBudgetError";
}

/** Tensors closer than this in the file are fetched by one range read (fewer subrequests per load). */
const MAX_GAP = 1 << 20;

export interface ShardLoadOptions extends KernelChoice {
  /** Called as bytes arrive. */
  onProgress?: (done: number, total: number) => void;
  /** Refuse a plan without hashes for this shard's ranges (REQUIRE_MANIFEST), rather than load them unverified. */
  requireHashes?: boolean;
}

/** One of the shard's ranges, as read, against the plan's hash: a mismatch names the shard and the range. */
async function checkRange(what: string, r: TensorRef, bytes: Uint8Array): Promise<void> {
  const got = await sha256Hex(bytes);
  if (got !== r.sha256) {
    throw new IntegrityError(`integrity check failed: ${what}: ${r.name} (${r.byteLength} bytes at ${r.offset}): sha256 ${hashPrefix(got)} does not match the plan's ${hashPrefix(r.sha256!)}; the shard is not loaded`);
  }
}

export class ShardRuntime {
  private readonly seqs = new Map<string, WasmSequence>();

  private constructor(
    readonly plan: ShardPlan,
    readonly spec: ShardSpec,
    readonly engine: WasmEngine,
    readonly memory: WebAssembly.Memory,
    private readonly arena: Arena,
    readonly loadMs: number,
  ) {}

  /**
   * Everything is allocated from the plan before a byte is read (as the engine does), inside a
   * memory whose maximum is the plan's: a shard that would not fit fails here, naming its budget.
   */
  static async load(plan: ShardPlan, index: number, source: RangeSource, opts: ShardLoadOptions = {}): Promise<ShardRuntime> {
    const t0 = Date.now();
    const spec = plan.shards[index];
    if (!spec) throw new Error(`the plan has no shard ${index} (it has ${plan.shards.length})`);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: spec.maxPages });
    const budget = `${spec.maxPages} pages (${((spec.maxPages * WASM_PAGE) / 2 ** 20).toFixed(1)} MiB) from the plan`;
    let engine: WasmEngine;
    let arena: Arena;
    let placements: ReturnType<typeof placeEngine>["placements"];
    const part = shardPart(plan, spec);
    try {
      const kernels = loadKernels({ memory, modules: opts.modules, module: opts.module, unavailable: opts.unavailable, force: opts.force, choose: opts.choose, warmup: opts.warmup });
      arena = new Arena(memory, kernels.heapBase);
      ({ engine, placements } = placeEngine(plan.model.config, part.tensors, kernels, arena, part.options));
    } catch (e) {
      const msg = (e as Error).message;
      if (e instanceof RangeError && /grow|exceed/i.test(msg)) {
        throw new ShardBudgetError(`shard ${index} (${spec.script}) needs more WASM memory than its budget of ${budget}: ${msg}`);
      }
      throw e;
    }

    const what = `shard ${index} (${spec.script})`;
    const unhashed = spec.tensors.filter((r) => !r.sha256);
    if (opts.requireHashes && unhashed.length) {
      throw new ManifestMissingError(`${what}: REQUIRE_MANIFEST is true and the plan has no hash for ${unhashed[0].name}${unhashed.length > 1 ? ` and ${unhashed.length - 1} more` : ""}: re-run edgelm shard-plan on the file and upload its plan.json`);
    }
    // Real tensors in file order, fetched in runs of nearby tensors; each checked against the plan's hash, then finalized (repacked) on arrival.
    const order = spec.tensors.map((r) => [r.name, r] as const).sort((a, b) => a[1].offset - b[1].offset);
    const total = order.reduce((a, [, r]) => a + r.byteLength, 0);
    let done = 0;
    for (let i = 0; i < order.length; ) {
      let j = i + 1;
      while (j < order.length && order[j][1].offset - (order[j - 1][1].offset + order[j - 1][1].byteLength) <= MAX_GAP) j++;
      const start = order[i][1].offset;
      const end = order[j - 1][1].offset + order[j - 1][1].byteLength;
      const src = new StreamSource(await source.read(start, end - start), end - start);
      for (let k = i; k < j; k++) {
        const [name, r] = order[k];
        const p = placements.get(name);
        if (!p) throw new Error(`shard ${index}: the engine has no place for ${name}`);
        await src.skip(r.offset - start - src.position);
        const dest = p.dest();
        await src.readInto(dest);
        if (r.sha256) await checkRange(what, r, dest);
        p.finalize();
        done += r.byteLength;
        opts.onProgress?.(done, total);
      }
      await src.cancel();
      i = j;
    }
    return new ShardRuntime(plan, spec, engine, memory, arena, Date.now() - t0);
  }

  info(): ShardInfo {
    return {
      index: this.spec.index,
      kind: this.spec.kind,
      script: this.spec.script,
      kernels: this.engine.kernels.kind,
      memoryBytes: this.memory.buffer.byteLength,
      maxBytes: this.spec.maxPages * WASM_PAGE,
      allocatedBytes: this.arena.top,
      loadMs: this.loadMs,
      sequences: [...this.seqs.keys()],
    };
  }

  /** One protocol frame in, one out. Never throws: errors become `{ok: false, error}` replies. */
  handle(frame: Uint8Array): Uint8Array {
    let reply: ShardReply;
    let payload: Float32Array | undefined;
    try {
      const { head, payload: input } = decodeFrame<ShardRequest>(frame);
      [reply, payload] = this.op(head, input);
    } catch (e) {
      reply = { ok: false, error: `shard ${this.spec.index}: ${(e as Error).message}` };
    }
    return encodeFrame(reply, payload);
  }

  private op(req: ShardRequest, input: Float32Array): [ShardReply, Float32Array?] {
    const H = this.plan.model.config.hiddenSize;
    switch (req.op) {
      case "info":
        return [{ ok: true, info: this.info() }];
      case "run": {
        if (this.spec.kind !== "layers") throw new Error("run: this is a head shard");
        return this.run(runParts(req.parts, input.length, H), input);
      }
      case "logits": {
        if (this.spec.kind !== "head") throw new Error("logits: this is a layer shard");
        if (!Number.isInteger(req.n) || req.n < 1 || input.length !== req.n * H) throw new Error(`logits: ${input.length} values for ${req.n} positions of ${H}`);
        const [r0, r1] = this.spec.rows!;
        const rows = r1 - r0;
        const out = new Float32Array(req.n * rows);
        this.engine.logitsOfRows(input).forEach((l, i) => out.set(l, i * rows));
        return [{ ok: true, n: req.n }, out];
      }
      case "truncate": {
        this.seqs.get(req.seq)?.truncate(req.n);
        return [{ ok: true }];
      }
      case "drop": {
        const s = this.seqs.get(req.seq);
        if (s && !s.evicted) s.release();
        this.seqs.delete(req.seq);
        return [{ ok: true }];
      }
    }
  }

  /**
   * One pass of this shard's layers over every part it holds (one read of its weights for all of
   * them); a part it does not hold is answered `unknown` and left out of the pass and the reply's
   * rows. Running out of KV blocks for the parts of this step is an error reply (KVBudgetError,
   * before any cache is written), never a half-written step.
   */
  private run(parts: ReturnType<typeof runParts>, input: Float32Array): [ShardReply, Float32Array?] {
    const H = this.plan.model.config.hiddenSize;
    const replies: PartReply[] = [];
    const held: { part: (typeof parts)[number]; seq: WasmSequence }[] = [];
    for (const part of parts) {
      const seq = this.sequence(part.seq, part.pos);
      if (seq) {
        held.push({ part, seq });
        replies.push({ seq: part.seq, ok: true });
      } else replies.push({ seq: part.seq, ok: false, unknown: true, have: this.have(part.seq) });
    }
    if (held.length === 0) return [{ ok: true, parts: replies }];
    // The payload is this frame's own copy: when every part runs, run it in place and send it back.
    let hidden = input;
    if (held.length < parts.length) {
      hidden = new Float32Array(held.reduce((a, h) => a + h.part.n, 0) * H);
      let at = 0;
      for (const { part } of held) {
        hidden.set(input.subarray(part.offset, part.offset + part.n * H), at);
        at += part.n * H;
      }
    }
    const [first, end] = this.engine.heldLayers;
    this.engine.forwardLayersBatch(held.map(({ part, seq }) => ({ seq, startPos: part.pos, n: part.n })), hidden, first, end);
    return [{ ok: true, parts: replies }, hidden];
  }

  private have(id: string): number {
    const s = this.seqs.get(id);
    return s && !s.evicted ? s.length(this.engine.heldLayers[0]) : 0;
  }

  /**
   * The sequence to extend at `pos`: the one held (if it reaches pos), or a fresh one when pos
   * is 0 (when the pool's blocks run out it evicts its least recently used). Undefined: the coordinator must
   * re-run the prefix.
   */
  private sequence(id: string, pos: number): WasmSequence | undefined {
    let s = this.seqs.get(id);
    if (s?.evicted) {
      this.seqs.delete(id);
      s = undefined;
    }
    if (s && pos <= s.length(this.engine.heldLayers[0])) {
      this.seqs.delete(id); // re-insert: the map's order is recency
      this.seqs.set(id, s);
      return s;
    }
    if (pos !== 0) return undefined;
    if (s) return s; // rewinding to 0 reuses its blocks
    for (const [k, v] of this.seqs) if (v.evicted) this.seqs.delete(k);
    s = this.engine.newSequence();
    // Forget handles whose blocks went to others.
    for (const [k, v] of this.seqs) if (v.evicted) this.seqs.delete(k);
    this.seqs.set(id, s);
    return s;
  }
}

export { SequenceEvictedError };
