/**
 * Shards in Node against the single-isolate wasm engine on the same file: every shard loads only
 * its tensors into a memory capped by the plan, and the sharded forward pass gives the engine's
 * logits bit for bit (same kernels, same code, layer range by layer range). Budgets are enforced:
 * a plan whose page maximum is too small fails at load, naming the shard and its budget.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadWasmEngine } from "../../src/engine/node";
import type { WasmEngine } from "../../src/engine/index";
import { decodeFrame, encodeFrame, FrameReader, type ShardReply } from "../../src/shard/protocol";
import type { ShardPlan } from "../../src/shard/plan";
import { fileRanges, loadLocalShards, nodeKernels, type LocalShards } from "../../src/shard/node";
import { ShardBudgetError, ShardRuntime } from "../../src/shard/runtime";
import { shardPart } from "../../src/shard/shard-part";
import { engineLayout } from "../../src/engine/index";
import { synthGGUF } from "../../weights-tools/fixtures";
import { planFor, tinyShards } from "./local-tiny";

const MiB = 2 ** 20;

describe("protocol frames", () => {
  it("round-trip a head and a payload, whatever the stream's chunking", async () => {
    const a = encodeFrame({ op: "run", parts: [{ seq: "s", pos: 3, n: 2 }] }, new Float32Array([1, 2.5, -3, 4]));
    const b = encodeFrame({ ok: true });
    const bytes = new Uint8Array([...a, ...b]);
    // Chunks of 3 bytes: frames straddle chunk boundaries.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));
        c.close();
      },
    });
    const r = new FrameReader(stream);
    const f1 = decodeFrame<{ op: string; pos: number }>((await r.next())!);
    expect(f1.head).toEqual({ op: "run", parts: [{ seq: "s", pos: 3, n: 2 }] });
    expect([...f1.payload]).toEqual([1, 2.5, -3, 4]);
    expect(decodeFrame((await r.next())!).head).toEqual({ ok: true });
    expect(await r.next()).toBeUndefined();
  });

  /** A byte stream (as workerd's are) serving `bytes` in pieces of at most `piece`; counts the reads that came with a caller's buffer. */
  function byteStream(bytes: Uint8Array, piece: number) {
    let at = 0;
    const seen = { byob: 0 };
    const stream = new ReadableStream({
      type: "bytes",
      pull(c) {
        const req = c.byobRequest;
        if (at >= bytes.length) {
          c.close();
          return req?.respond(0); // a read waiting with its buffer is answered at the close
        }
        if (req?.view) {
          seen.byob++;
          const n = Math.min(piece, req.view.byteLength, bytes.length - at);
          new Uint8Array(req.view.buffer, req.view.byteOffset, n).set(bytes.subarray(at, at + n));
          req.respond(n);
          at += n;
        } else {
          c.enqueue(bytes.slice(at, at + piece));
          at += piece;
        }
      },
    });
    return { stream: stream as ReadableStream<Uint8Array>, seen };
  }

  it("reads a byte stream into whole frames with a BYOB reader, however it is cut, and a frame cut short is an error", async () => {
    const big = Float32Array.from({ length: 10_000 }, (_, i) => Math.sin(i));
    const frames = [encodeFrame({ op: "logits", n: 1 }, big), encodeFrame({ ok: true }), encodeFrame({ op: "run", parts: [{ seq: "s", pos: 0, n: 1 }] }, new Float32Array([7, -1]))];
    const bytes = new Uint8Array(frames.reduce((a, f) => a + f.length, 0));
    frames.reduce((at, f) => (bytes.set(f, at), at + f.length), 0);
    for (const piece of [3, 4096, bytes.length]) {
      const { stream, seen } = byteStream(bytes, piece);
      const r = new FrameReader(stream);
      for (const f of frames) expect(await r.next(), `pieces of ${piece}`).toEqual(f);
      expect(await r.next()).toBeUndefined();
      expect(seen.byob).toBeGreaterThan(0);
    }
    // The first frame's last byte never comes.
    const { stream } = byteStream(bytes.subarray(0, frames[0].length - 1), 4096);
    await expect(new FrameReader(stream).next()).rejects.toThrow(/ended inside a frame/);
    // The payload of a frame read this way sits aligned at the start of its own buffer.
    const { payload } = decodeFrame(frames[0]);
    expect(payload).toEqual(big);
  }, 20_000);
});

describe("shards of tiny (Q4_0) in Node", () => {
  let path: string;
  let single: WasmEngine;
  let plan: ShardPlan;
  let shards: LocalShards;

  beforeAll(async () => {
    // 19 MiB: one layer shard and six head slices, so the logits are gathered from several shards.
    ({ path, single, plan, shards } = await tinyShards());
  });

  it("the plan cuts the head into slices and every shard stays inside its page maximum", () => {
    expect(plan.shards.filter((s) => s.kind === "head").length).toBeGreaterThan(1);
    for (const r of shards.runtimes) {
      const i = r.info();
      expect(i.memoryBytes).toBeLessThanOrEqual(i.maxBytes);
      expect(i.allocatedBytes).toBeLessThanOrEqual(i.maxBytes);
      // The estimate is not wildly above what is used either (a plan that wastes budget is a bad plan).
      expect(i.maxBytes - i.allocatedBytes, r.spec.script).toBeLessThan(2 * MiB);
    }
  });

  it("each shard allocates exactly the engine's layout of its part for the build it runs, inside the plan's maximum", () => {
    for (const r of shards.runtimes) {
      const part = shardPart(plan, r.spec);
      const { kernels } = r.engine;
      const layout = engineLayout(plan.model.config, part.tensors, { ...part.options, build: kernels.kind });
      expect(r.info().allocatedBytes, r.spec.script).toBe(kernels.heapBase + layout.total);
      expect(kernels.heapBase + engineLayout(plan.model.config, part.tensors, { ...part.options, build: "max" }).total).toBeLessThanOrEqual(r.info().maxBytes);
    }
  });

  it("prefill + decode: sharded logits equal the single engine's bit for bit; allLogits too", async () => {
    const prompt = [9906, 11, 358, 1097, 264, 1296, 13, 578, 4062];
    const a = single.newSequence();
    const b = shards.engine.newSequence();
    const la = single.forward(a, prompt, 0, { allLogits: true });
    const lb = await shards.engine.forward(b, prompt, 0, { allLogits: true });
    expect(lb.length).toBe(prompt.length);
    lb.forEach((l, i) => expect(Buffer.from(l.buffer).equals(Buffer.from(la[i].buffer)), `position ${i}`).toBe(true));
    for (const [i, t] of [17, 4242, 100].entries()) {
      const [x] = single.forward(a, [t], prompt.length + i);
      const [y] = await shards.engine.forward(b, [t], prompt.length + i);
      expect(Buffer.from(y.buffer).equals(Buffer.from(x.buffer)), `decode ${i}`).toBe(true);
    }
  });

  it("a shard that lost the sequence says so, and the coordinator re-runs the prefix: same logits", async () => {
    const prompt = [1, 2, 3, 4, 5];
    const a = single.newSequence();
    const b = shards.engine.newSequence();
    single.forward(a, prompt, 0);
    await shards.engine.forward(b, prompt, 0);
    // The layer shard forgets everything (an isolate recycled would start empty).
    const layer = shards.runtimes.find((r) => r.spec.kind === "layers")!;
    const reply = decodeFrame<ShardReply>(layer.handle(encodeFrame({ op: "drop", seq: b.id }))).head;
    expect(reply.ok).toBe(true);
    const unknown = decodeFrame<ShardReply>(layer.handle(encodeFrame({ op: "run", parts: [{ seq: b.id, pos: 5, n: 1 }] }, new Float32Array(64)))).head;
    expect(unknown).toEqual({ ok: true, parts: [{ seq: b.id, ok: false, unknown: true, have: 0 }] });
    const before = shards.engine.stats.recoveries;
    const [x] = single.forward(a, [77], 5);
    const [y] = await shards.engine.forward(b, [77], 5);
    expect(shards.engine.stats.recoveries).toBe(before + 1);
    expect(Buffer.from(y.buffer).equals(Buffer.from(x.buffer))).toBe(true);
  });

  it("the KV blocks are shared under the plan's budget (2 × 256 positions): three 160-position sequences fit; a fourth evicts the least recently used, which then reports unknown", async () => {
    const layer = shards.runtimes.find((r) => r.spec.kind === "layers")!;
    const run = (seq: string, pos: number, n = 1) => {
      const head = decodeFrame<ShardReply>(layer.handle(encodeFrame({ op: "run", parts: [{ seq, pos, n }] }, new Float32Array(64 * n).fill(0.1)))).head;
      return head.ok ? head.parts![0] : head;
    };
    for (const s of ["lru-a", "lru-b", "lru-c"]) expect(run(s, 0, 160).ok).toBe(true);
    expect(run("lru-a", 160).ok).toBe(true); // all three held: 30 of 32 blocks
    expect(run("lru-b", 160).ok).toBe(true);
    expect(run("lru-d", 0, 48).ok).toBe(true); // 3 more blocks: lru-c, least recently used, gives its 10
    expect(run("lru-c", 160)).toEqual({ seq: "lru-c", ok: false, unknown: true, have: 0 });
    expect(run("lru-a", 161).ok).toBe(true);
    expect(layer.info().sequences).not.toContain("lru-c");
  });

  it("errors come back as replies, not exceptions: wrong op for the shard kind, bad sizes", () => {
    const head = shards.runtimes.find((r) => r.spec.kind === "head")!;
    const layer = shards.runtimes.find((r) => r.spec.kind === "layers")!;
    expect(decodeFrame<ShardReply>(head.handle(encodeFrame({ op: "run", parts: [{ seq: "x", pos: 0, n: 1 }] }, new Float32Array(64)))).head).toMatchObject({ ok: false, error: /head shard/ });
    expect(decodeFrame<ShardReply>(layer.handle(encodeFrame({ op: "run", parts: [{ seq: "x", pos: 0, n: 2 }] }, new Float32Array(64)))).head).toMatchObject({ ok: false, error: /64 values for 2 positions/ });
  });

  it("loading over budget fails clearly: a plan with too few pages for shard 0", async () => {
    const tight = structuredClone(plan);
    // One page less than shard 0 actually allocates.
    tight.shards[0].maxPages = Math.ceil(shards.runtimes[0].info().allocatedBytes / 65536) - 1;
    const err = await ShardRuntime.load(tight, 0, fileRanges(path), nodeKernels()).catch((e) => e);
    expect(err).toBeInstanceOf(ShardBudgetError);
    expect(err.message).toMatch(new RegExp(`shard 0 \\(edgelm-shard-0\\) needs more WASM memory than its budget of ${tight.shards[0].maxPages} pages`));
  });

  it("measured overhead: JS heap and peak WASM memory per shard (printed for docs/sharding.md)", () => {
    for (const r of shards.runtimes) {
      const i = r.info();
      console.log(`shard ${i.index} ${i.kind}: wasm ${(i.memoryBytes / MiB).toFixed(2)} MiB of max ${(i.maxBytes / MiB).toFixed(2)} MiB, allocated ${(i.allocatedBytes / MiB).toFixed(2)} MiB, kernels ${i.kernels}`);
    }
    expect(shards.runtimes.length).toBe(plan.shards.length);
  });
});

describe("shards of tiny (Q8_0: placed as Q8R, larger than the file) in Node", () => {
  it("each shard allocates the engine's layout of its part, and the sharded logits equal the single engine's bit for bit", async () => {
    const path = await synthGGUF("tiny", "q8_0");
    const single = await loadWasmEngine(path, { contextLength: 256, sequences: 2, threads: 1 });
    // 24 MiB: one layer shard and two head slices, each repacking its rows of output.weight.
    const plan = await planFor(path, 24, 256);
    expect(plan.shards.filter((s) => s.kind === "head").length).toBe(2);
    const shards = await loadLocalShards(plan, path);
    for (const r of shards.runtimes) {
      const part = shardPart(plan, r.spec);
      const { kernels } = r.engine;
      expect(r.info().allocatedBytes, r.spec.script).toBe(kernels.heapBase + engineLayout(plan.model.config, part.tensors, { ...part.options, build: kernels.kind }).total);
      expect(r.info().allocatedBytes).toBeLessThanOrEqual(r.info().maxBytes);
    }
    const prompt = [9906, 11, 358, 1097, 264, 1296, 13, 578, 4062];
    const a = single.newSequence();
    const b = shards.engine.newSequence();
    const la = single.forward(a, prompt, 0, { allLogits: true });
    const lb = await shards.engine.forward(b, prompt, 0, { allLogits: true });
    lb.forEach((l, i) => expect(Buffer.from(l.buffer).equals(Buffer.from(la[i].buffer)), `position ${i}`).toBe(true));
    const [x] = single.forward(a, [17], prompt.length);
    const [y] = await shards.engine.forward(b, [17], prompt.length);
    expect(Buffer.from(y.buffer).equals(Buffer.from(x.buffer)), "decode").toBe(true);
  });
});
