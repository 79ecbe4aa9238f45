/**
 * The wasm engine's sequence mechanics (prefill vs decode, layer ranges,
 * rewind, slots), loading paths, input errors, and equality across kernel
 * builds. Quantized prefill and decode are bit-identical by construction
 * (matmul == repeated matvec, docs/kernels.md), so those checks are exact.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TensorType } from "../../src/gguf/types";
import { KVBudgetError, SequenceEvictedError } from "../../src/engine/index";
import { loadWasmEngine } from "../../src/engine/node";
import { emulatedFusedBuildDir } from "../kernels/fused-emulation";
import { synthGGUF } from "../../weights-tools/fixtures";
import { BUILDS, engineFor, engineFromBytes, fileBytes, randomTokens, relErr, sameBits, smallGGUF } from "./helpers";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

describe.each(BUILDS)("wasm engine sequences (%s kernels)", (build) => {
  it("Q4_0: prefill in one call (chunks of 16) equals token-by-token decode, bit for bit", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), build, { prefillChunk: 16 });
    const tokens = randomTokens(40, 100256, 21);
    const all = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    const seq = e.newSequence();
    tokens.forEach((t, i) => expect(sameBits(e.forward(seq, [t], i)[0], all[i]), `position ${i}`).toBe("same"));
    expect(seq.length()).toBe(40);
    // Last-position logits only, by default.
    const last = e.forward(e.newSequence(), tokens);
    expect(last).toHaveLength(1);
    expect(sameBits(last[0], all[39])).toBe("same");
  });

  it("F16: prefill equals decode within float rounding (1e-5 of max |logit|)", async () => {
    const e = await engineFor(await synthGGUF("tiny-parallel", "f16"), build, { prefillChunk: 8 });
    const tokens = randomTokens(20, 100256, 22);
    const all = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    const seq = e.newSequence();
    tokens.forEach((t, i) => expect(relErr(e.forward(seq, [t], i)[0], all[i])).toBeLessThan(1e-5));
  });

  it("forwardLayers over [0, 1) then [1, 2) equals forward (and the head reads it back)", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), build, { prefillChunk: 16 });
    const tokens = randomTokens(24, 100256, 23);
    const want = e.forward(e.newSequence(), tokens, 0, { allLogits: true });
    const seq = e.newSequence();
    const hidden = e.embed(tokens); // [24 × H]
    e.forwardLayers(seq, 0, hidden, 0, 1);
    expect([seq.length(0), seq.length(1)]).toEqual([24, 0]);
    e.forwardLayers(seq, 0, hidden, 1, 2);
    const H = e.config.hiddenSize;
    expect(sameBits(e.logitsOf(hidden.subarray(23 * H)), want[23])).toBe("same");
    // Decode one more position across the split, too.
    const next = e.forward(e.newSequence(), [...tokens, 77], 0)[0];
    const h1 = e.embed([77]);
    e.forwardLayers(seq, 24, h1, 0, 1);
    e.forwardLayers(seq, 24, h1, 1, 2);
    expect(sameBits(e.logitsOf(h1), next)).toBe("same");
    expect(() => e.forwardLayers(seq, 0, new Float32Array(H + 1), 0, 1)).toThrow(/multiple of/);
    expect(() => e.forwardLayers(seq, 0, new Float32Array(H), 1, 3)).toThrow(/bad layer range/);
  });

  it("rewinds to startPos, truncates and resets like the reference", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), build);
    const a = randomTokens(20, 100256, 24);
    const b = randomTokens(6, 100256, 25);
    const seq = e.newSequence();
    e.forward(seq, a);
    // Overwrite positions 10.. with other tokens: same as a fresh sequence over a[0..10) + b.
    const got = e.forward(seq, b, 10, { allLogits: true });
    const want = e.forward(e.newSequence(), [...a.slice(0, 10), ...b], 0, { allLogits: true }).slice(10);
    got.forEach((g, i) => expect(sameBits(g, want[i])).toBe("same"));
    expect(seq.length()).toBe(16);
    seq.truncate(5);
    expect(seq.length()).toBe(5);
    expect(() => e.forward(seq, [1], 6)).toThrow(/caches 5 positions; cannot start at 6/);
    // Default startPos is the cached length.
    expect(sameBits(e.forward(seq, a.slice(5, 10))[0], e.forward(e.newSequence(), a.slice(0, 10))[0])).toBe("same");
    seq.reset();
    expect(seq.length()).toBe(0);
    expect(sameBits(e.forward(seq, [a[0]])[0], e.forward(e.newSequence(), [a[0]])[0])).toBe("same");
  });
});

describe("wasm engine slots, errors and loading", () => {
  const build = BUILDS[0];

  it("KV blocks: a sequence holds what it uses; a full pool evicts the least recently used sequence outside the step; an evicted or released one refuses to run", async () => {
    // 64 positions of budget in blocks of 16: 4 blocks.
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), build, { sequences: 1, contextLength: 64, blockPositions: 16 });
    const prompt = Array.from({ length: 20 }, (_, i) => 1 + i);
    const s1 = e.newSequence();
    const s2 = e.newSequence();
    e.forward(s1, prompt);
    e.forward(s2, [4, 5]);
    expect([s1.blocks.length, s2.blocks.length, e.pool.freeBlocks()]).toEqual([2, 1, 1]);
    e.forward(s1, [6]); // s2 is now least recently used; position 20 is in s1's second block
    expect(e.pool.freeBlocks()).toBe(1);
    const s3 = e.newSequence();
    expect(s3.blocks).toEqual([]);
    const got = e.forward(s3, [...prompt, 6, 7])[0]; // 22 positions: 2 blocks, one of them s2's
    expect(() => e.forward(s2, [7])).toThrow(SequenceEvictedError);
    expect(sameBits(e.forward(s1, [7])[0], got)).toBe("same");
    s3.release();
    expect(() => e.forward(s3, [1], 0)).toThrow(SequenceEvictedError);
    expect(() => e.forward({}, [1])).toThrow(/not a sequence of this engine/);
    // One sequence can never hold more than the pool: refused before anything changes.
    const s4 = e.newSequence();
    expect(() => e.forwardBatch([{ seq: s1, tokens: prompt.slice(0, 16) }, { seq: s4, tokens: Array.from({ length: 40 }, (_, i) => i) }])).toThrow(KVBudgetError);
    expect(s1.length()).toBe(22);
  });

  it("rejects bad tokens, positions past the context, and empty input", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), build, { contextLength: 32 });
    const seq = e.newSequence();
    expect(() => e.forward(seq, [100352])).toThrow(/token id 100352 is outside the vocabulary \(0\.\.100351\)/);
    expect(() => e.forward(seq, [-1])).toThrow(/outside the vocabulary/);
    expect(() => e.forward(seq, [1.5])).toThrow(/outside the vocabulary/);
    expect(() => e.forward(seq, [])).toThrow(/no tokens/);
    expect(() => e.forward(seq, randomTokens(33, 1000))).toThrow(/positions up to 33 exceed the context length 32/);
    expect(seq.length()).toBe(0); // nothing was written by the failed calls
    e.forward(seq, randomTokens(32, 1000));
    expect(() => e.forward(seq, [1])).toThrow(/exceed the context length 32/);
    expect(() => e.forward(seq, [1], -1)).toThrow(/startPos/);
  });

  it("context: defaults to min(model context, 4096); options are validated", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    const e = await engineFor(path, build);
    expect(e.contextLength).toBe(Math.min(e.config.contextLength, 4096));
    await expect(engineFor(path, build, { contextLength: e.config.contextLength + 1 })).rejects.toThrow(/contextLength must be/);
    await expect(engineFor(path, build, { sequences: 0 })).rejects.toThrow(/sequences must be/);
  });

  it("names the kernel build and why it was chosen", async () => {
    const e = await engineFor(await synthGGUF("tiny", "q4_0"), build);
    expect(e.name).toMatch(new RegExp(`^wasm \\(${build} kernels: .*${build === "scalar" ? "scalar build" : "self-test passed"}`));
  });

  it("unsupported tensor types and bad shapes fail at load, naming the tensor", async () => {
    const q81 = await smallGGUF({ raw: { "blk.1.ffn_up.weight": { type: TensorType.Q8_1, bytes: new Uint8Array((512 * 256 / 32) * 36) } } });
    await expect(engineFromBytes(q81, build)).rejects.toThrow(/blk\.1\.ffn_up\.weight: unsupported tensor type Q8_1 \(the wasm engine supports/);
    const shape = await smallGGUF({ raw: { "blk.0.attn_norm.bias": { type: TensorType.F32, bytes: new Uint8Array(512 * 4), dims: [512] } } });
    await expect(engineFromBytes(shape, build)).rejects.toThrow(/blk\.0\.attn_norm\.bias has 512 elements, expected 256/);
  });

  it("stream loading (workerd's path) gives the same logits as file loading, bit for bit", async () => {
    const path = await synthGGUF("tiny", "q4_0");
    const tokens = randomTokens(10, 100256, 31);
    const a = await engineFor(path, build);
    const b = await engineFromBytes(fileBytes(path), build);
    expect(sameBits(b.forward(b.newSequence(), tokens)[0], a.forward(a.newSequence(), tokens)[0])).toBe("same");
    // File loading in tiny pieces (many reads in flight, Q4R repacked group range by group range, Q6R too,
    // odd row counts): same bits again.
    for (const spec of [{}, { output: TensorType.Q6_K, vocab: 510 }]) {
      const file = join(tmpdir(), `edgelm-pieces-${process.pid}-${spec.output ?? 0}.gguf`);
      writeFileSync(file, await smallGGUF(spec));
      const whole = await engineFor(file, build);
      const pieces = await engineFor(file, build, { readChunkBytes: 1000 });
      const toks = randomTokens(7, 510, 5);
      expect(sameBits(pieces.forward(pieces.newSequence(), toks)[0], whole.forward(whole.newSequence(), toks)[0])).toBe("same");
      rmSync(file);
    }
  });

  it("the stream path imports nothing from node:", () => {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = readFileSync(file, "utf8");
      for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gm)) {
        const spec = m[1];
        if (/^node:/.test(spec)) throw new Error(`${file} imports ${spec}`);
        if (spec.startsWith(".")) visit(resolve(dirname(file), `${spec}.ts`));
      }
    };
    visit(join(root, "src/engine/index.ts"));
    expect(seen.size).toBeGreaterThan(8);
  });
});

describe("kernel builds give identical logits", () => {
  // relaxed-fused: its kernels with the fused dot emulated (Node 20 computes the instruction wrongly on first calls).
  const script = (build: string) => `
    import { createHash } from "node:crypto";
    import { loadWasmEngine } from "./src/engine/node.ts";
    import { synthGGUF } from "./weights-tools/fixtures.ts";
    const buildDir = ${build === "relaxed-fused" ? JSON.stringify(emulatedFusedBuildDir()) : "undefined"};
    const out = {};
    for (const [preset, type] of [["tiny", "q4_0"], ["tiny-parallel", "f16"]]) {
      const e = await loadWasmEngine(await synthGGUF(preset, type), { threads: 1, force: "${build}", relaxed: ${build.startsWith("relaxed")}, buildDir });
      const tokens = Array.from({ length: 70 }, (_, i) => (i * 7919 + 11) % 100256);
      const h = createHash("sha256");
      for (const l of e.forward(e.newSequence(), tokens, 0, { allLogits: true })) h.update(new Uint8Array(l.buffer));
      out[preset + " " + type] = { kind: e.kernels.kind, hash: h.digest("hex") };
    }
    console.log(JSON.stringify(out));`;
  const run = (build: string) => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script(build)], { cwd: root, encoding: "utf8", timeout: 110_000 });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, { kind: string; hash: string }>;
  };

  // The relaxed children get no command-line flag: loadWasmEngine turns relaxed SIMD on at run time.
  it("scalar, SIMD, relaxed SIMD and relaxed-fused: same bits at every position", () => {
    const simd = run("simd");
    const others = { scalar: run("scalar"), relaxed: run("relaxed"), "relaxed-fused": run("relaxed-fused") };
    for (const key of Object.keys(simd)) {
      expect(simd[key].kind).toBe("simd");
      for (const [build, r] of Object.entries(others)) {
        expect(r[key].kind).toBe(build);
        expect(r[key].hash, `${build} ${key}`).toBe(simd[key].hash);
      }
    }
  });
});
