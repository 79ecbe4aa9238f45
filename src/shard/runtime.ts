/**
 * One shard of a plan, host-neutral (a Durable Object in workerd, or in-process in Node): loads
 * only its tensors, by range, into a WebAssembly.Memory whose maximum is the plan's page budget,
 * keeps per-sequence KV for its layers (LRU over the plan's slots), and answers protocol frames.
 *
 * The forward pass is the engine's own (src/engine): the shard builds a *virtual one-shard view*
 * of the file — its layers renamed blk.0.., the model's vocabulary replaced by its head slice, and
 * one-row placeholders for the tensors it does not hold — and hands it to the engine's
 * `planModel` and `WasmEngine` unchanged. So a shard computes exactly what the single-isolate
 * engine computes for those layers/rows (same kernels, same code, bit for bit), and a speed-up
 * in src/engine reaches the shards without a second copy of the forward pass to maintain.
 */
import type { KernelChoice } from "../engine/index";
import { loadKernels } from "../engine/kernels";
import { Arena, WASM_PAGE } from "../engine/arena";
import { planModel } from "../engine/load";
import { SequenceEvictedError, WasmEngine, WasmSequence } from "../engine/index";
import { StreamSource } from "../gguf/source";
import { TensorType, type TensorInfo } from "../gguf/types";
import type { StableLMConfig } from "../model/config";
import type { ShardPlan, ShardSpec, TensorRef } from "./plan";
import { decodeFrame, encodeFrame, type ShardInfo, type ShardReply, type ShardRequest } from "./protocol";

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

/** The virtual header a shard gives the engine, and which of its tensors come from the file. */
export function shardView(plan: ShardPlan, spec: ShardSpec): { config: StableLMConfig; tensors: Map<string, TensorInfo>; sources: Map<string, TensorRef> } {
  const base = plan.model.config;
  const H = base.hiddenSize;
  const tensors = new Map<string, TensorInfo>();
  const sources = new Map<string, TensorRef>();
  const real = (name: string, r: TensorRef) => {
    tensors.set(name, { name, type: r.type, dims: r.dims, offset: r.offset, byteLength: r.byteLength, count: r.dims.reduce((a, b) => a * b, 1) });
    sources.set(name, r);
  };
  // Placeholders: never read, never used by the ops this shard answers; F32 so their size is what we say.
  const placeholder = (name: string, dims: number[], byteLength: number) =>
    tensors.set(name, { name, type: TensorType.F32, dims, offset: 0, byteLength, count: dims.reduce((a, b) => a * b, 1) });

  if (spec.kind === "layers") {
    const [first, end] = spec.layers!;
    for (const r of spec.tensors) {
      const m = /^blk\.(\d+)\.(.*)$/.exec(r.name);
      if (!m || Number(m[1]) < first || Number(m[1]) >= end) throw new Error(`shard ${spec.index}: tensor ${r.name} is outside its layers [${first}, ${end})`);
      real(`blk.${Number(m[1]) - first}.${m[2]}`, r);
    }
    placeholder("token_embd.weight", [H, 1], H * 4);
    placeholder("output_norm.weight", [H], H * 4);
    placeholder("output.weight", [H, 1], H * 4);
    return { config: { ...base, numLayers: end - first, vocabSize: 1 }, tensors, sources };
  }
  const [r0, r1] = spec.rows!;
  for (const r of spec.tensors) real(r.name, r);
  // The embedding placeholder must have the slice's row count (planModel checks the shape) but
  // only 64 bytes are reserved for it: it is never read.
  placeholder("token_embd.weight", [H, r1 - r0], 64);
  return { config: { ...base, numLayers: 0, vocabSize: r1 - r0 }, tensors, sources };
}

export interface ShardLoadOptions extends KernelChoice {
  /** Called as bytes arrive. */
  onProgress?: (done: number, total: number) => void;
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
    let placements: ReturnType<typeof planModel>["placements"];
    const { config, tensors, sources } = shardView(plan, spec);
    try {
      const kernels = loadKernels({ memory, modules: opts.modules, module: opts.module, unavailable: opts.unavailable, force: opts.force, warmup: opts.warmup });
      arena = new Arena(memory, kernels.heapBase);
      const mp = planModel(config, tensors, kernels, arena);
      placements = mp.placements;
      engine = new WasmEngine(config, kernels, arena, mp.weights, { contextLength: plan.contextLength, sequences: plan.sequences, prefillChunk: plan.prefillChunk });
    } catch (e) {
      const msg = (e as Error).message;
      if (e instanceof RangeError && /grow|exceed/i.test(msg)) {
        throw new ShardBudgetError(`shard ${index} (${spec.script}) needs more WASM memory than its budget of ${budget}: ${msg}`);
      }
      throw e;
    }

    // Real tensors in file order, fetched in runs of nearby tensors; each finalized (repacked) on arrival.
    const order = [...sources.entries()].sort((a, b) => a[1].offset - b[1].offset);
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
        await src.readInto(p.dest());
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
        if (input.length !== req.n * H) throw new Error(`run: ${input.length} values for ${req.n} positions of ${H}`);
        const seq = this.sequence(req.seq, req.pos);
        if (!seq) return [{ ok: false, unknown: true, have: this.have(req.seq) }];
        // The payload is this frame's own copy: run in place and send it back.
        this.engine.forwardLayers(seq, req.pos, input, 0, this.engine.config.numLayers);
        return [{ ok: true, n: req.n }, input];
      }
      case "logits": {
        if (this.spec.kind !== "head") throw new Error("logits: this is a layer shard");
        if (input.length !== req.n * H) throw new Error(`logits: ${input.length} values for ${req.n} positions of ${H}`);
        const rows = this.engine.config.vocabSize;
        const out = new Float32Array(req.n * rows);
        for (let i = 0; i < req.n; i++) out.set(this.engine.logitsOf(input.subarray(i * H, (i + 1) * H)), i * rows);
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

  private have(id: string): number {
    const s = this.seqs.get(id);
    return s && !s.evicted ? s.length(0) : 0;
  }

  /**
   * The sequence to extend at `pos`: the one held (if it reaches pos), or a fresh KV slot when
   * pos is 0 (the pool evicts its least recently used slot). Undefined: the coordinator must
   * re-run the prefix.
   */
  private sequence(id: string, pos: number): WasmSequence | undefined {
    let s = this.seqs.get(id);
    if (s?.evicted) {
      this.seqs.delete(id);
      s = undefined;
    }
    if (s && pos <= s.length(0)) {
      this.seqs.delete(id); // re-insert: the map's order is recency
      this.seqs.set(id, s);
      return s;
    }
    if (pos !== 0) return undefined;
    if (s) return s; // rewinding to 0 reuses the slot
    for (const [k, v] of this.seqs) if (v.evicted) this.seqs.delete(k);
    s = this.engine.newSequence();
    // The pool evicted its LRU slot if full; forget handles that lost theirs.
    for (const [k, v] of this.seqs) if (v.evicted) this.seqs.delete(k);
    this.seqs.set(id, s);
    return s;
  }
}

export { SequenceEvictedError };
