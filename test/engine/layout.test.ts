/**
 * The engine's memory layout (src/engine/layout.ts) is what the engine allocates: for several
 * shapes, tensor types, options and every kernel build, a WasmEngine placed over a header takes
 * exactly the layout's bytes from its arena, and the kernels' size formulas (kernel-sizes.ts)
 * equal every build's own exports. The shard planner sizes shards by the same layout; its page
 * maximum covers each build's layout of each shard.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { GGUFHeader } from "../../src/gguf/reader";
import { TensorType } from "../../src/gguf/types";
import { engineLayout, newKernels, placeEngine, type LayoutOptions, type PartOptions, type ThreadOptions, type WasmEngineOptions } from "../../src/engine/index";
import { q2krBytes, q3krBytes, q4krBytes, q4rBytes, q5krBytes, q6rBytes, q8rBytes, Q8R_MAX_COLS, q8aBytes, q8bBytes, q8bPieces, SCRATCH_BYTES } from "../../src/engine/kernel-sizes";
import type { BuildKind, KernelExports, KernelModules } from "../../src/engine/kernels";
import { compileKernelModules, enableRelaxedSimd } from "../../src/engine/node";
import { openGGUF } from "../../src/gguf/node";
import { configFromGGUF } from "../../src/model/config";
import { modelTensors } from "../../src/model/tensors";
import { KERNEL_RESERVE, planShards } from "../../src/shard/plan";
import { shardPart } from "../../src/shard/shard-part";
import { synthGGUF } from "../../weights-tools/fixtures";
import { SHAPES, stablelmHeader, type Shape } from "../shard/headers";
import { moduleOf } from "../kernels/harness";

const BUILDS: BuildKind[] = ["relaxed-fused", "relaxed", "simd", "scalar"];
type Header = Pick<GGUFHeader, "metadata" | "tensorByName">;

let modules: KernelModules;
let sharedModules: KernelModules;
beforeAll(() => {
  enableRelaxedSimd();
  modules = compileKernelModules().modules;
  sharedModules = compileKernelModules(undefined, true).modules;
  // Node 20 computes the fused dot wrongly on first calls, so that build would fail its self-test
  // here: its kernels with the dot emulated have the same exports and sizes (../kernels/fused-emulation.ts).
  modules["relaxed-fused"] = moduleOf("relaxed-fused-emulated");
  sharedModules["relaxed-fused"] = moduleOf("relaxed-fused-shared-emulated");
  for (const b of BUILDS) if (!modules[b] || !sharedModules[b]) throw new Error(`the ${b} build did not compile`);
});

/** The arena bytes an engine placed over `header` with these options takes, for this build (the shared-memory one with threads). */
function allocated(header: Header, build: BuildKind, opts: WasmEngineOptions & PartOptions & ThreadOptions): { used: number; layoutTotal: number } {
  const config = configFromGGUF(header.metadata, header.tensorByName);
  const shared = (opts.threads ?? 1) > 1;
  const { kernels, arena } = newKernels({ modules: shared ? sharedModules : modules, shared, force: build, warmup: false });
  expect(kernels.kind).toBe(build);
  const { layout } = placeEngine(config, header.tensorByName, kernels, arena, opts);
  return { used: arena.used, layoutTotal: layout.total };
}

describe("kernel sizes", () => {
  it("equal every build's q8a_bytes, q8b_bytes, q4r_bytes, q8r_bytes, q6r_bytes, q4kr_bytes, q5kr_bytes, q2kr_bytes, q3kr_bytes and scratch_bytes, shared-memory builds too", () => {
    const instances = BUILDS.flatMap((build) => [
      [build, new WebAssembly.Instance(modules[build]!, { env: { memory: new WebAssembly.Memory({ initial: 16 }) } })],
      [`${build} shared`, new WebAssembly.Instance(sharedModules[build]!, { env: { memory: new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true }) } })],
    ] as const);
    for (const [name, instance] of instances) {
      const e = instance.exports as unknown as KernelExports;
      const build = name.split(" ")[0] as BuildKind;
      expect(SCRATCH_BYTES, `${name} scratch`).toBe(e.scratch_bytes() >>> 0);
      for (const n of [32, 64, 96, 160, 256, 2048, 5120, 5632, 13824]) {
        expect(q8aBytes(n), `${name} q8a ${n}`).toBe(e.q8a_bytes(n) >>> 0);
        for (const ntok of [1, 2, 3, 4, 5, 7, 8, 9, 16, 19, 32, 33, 64]) expect(q8bBytes(build, n, ntok), `${name} q8b ${n} × ${ntok}`).toBe(e.q8b_bytes(n, ntok) >>> 0);
        for (const rows of [1, 3, 4, 5, 510, 2048, 100352]) {
          expect(q4rBytes(rows, n), `${name} q4r ${rows} × ${n}`).toBe(e.q4r_bytes(rows, n) >>> 0);
          expect(q8rBytes(rows, n), `${name} q8r ${rows} × ${n}`).toBe(e.q8r_bytes(rows, n) >>> 0);
          if (n % 256 === 0) expect(q6rBytes(rows, n), `${name} q6r ${rows} × ${n}`).toBe(e.q6r_bytes(rows, n) >>> 0);
          if (n % 256 === 0) expect(q4krBytes(rows, n), `${name} q4kr ${rows} × ${n}`).toBe(e.q4kr_bytes(rows, n) >>> 0);
          if (n % 256 === 0) expect(q5krBytes(rows, n), `${name} q5kr ${rows} × ${n}`).toBe(e.q5kr_bytes(rows, n) >>> 0);
          if (n % 256 === 0) expect(q2krBytes(rows, n), `${name} q2kr ${rows} × ${n}`).toBe(e.q2kr_bytes(rows, n) >>> 0);
          if (n % 256 === 0) expect(q3krBytes(rows, n), `${name} q3kr ${rows} × ${n}`).toBe(e.q3kr_bytes(rows, n) >>> 0);
        }
      }
    }
  });
});

describe("refused shapes", () => {
  it("a Q8_0 matrix wider than the Q8R kernels take is refused, naming the tensor and the limit", () => {
    const ok = stablelmHeader({ vocab: 512, hidden: 64, ffn: Q8R_MAX_COLS, layers: 1, heads: 4, type: TensorType.Q8_0 });
    expect(() => engineLayout(configFromGGUF(ok.metadata, ok.tensorByName), ok.tensorByName, { build: "max" })).not.toThrow();
    const wide = stablelmHeader({ vocab: 512, hidden: 64, ffn: Q8R_MAX_COLS + 32, layers: 1, heads: 4, type: TensorType.Q8_0 });
    expect(() => engineLayout(configFromGGUF(wide.metadata, wide.tensorByName), wide.tensorByName, { build: "max" })).toThrow(
      `tensor blk.0.ffn_down.weight: ${Q8R_MAX_COLS + 32} columns of Q8_0; the wasm engine's Q8_0 kernels take at most ${Q8R_MAX_COLS}`,
    );
  });
});

describe("Q8B by positions", () => {
  it("positions quantized alone and moved by q8bPieces give the whole batch's Q8B, byte for byte, in every build", () => {
    for (const build of BUILDS) {
      const memory = new WebAssembly.Memory({ initial: 64 });
      const e = new WebAssembly.Instance(modules[build]!, { env: { memory } }).exports as unknown as KernelExports;
      const base = Math.ceil((e.heap_base() >>> 0) / 64) * 64;
      for (const [n, ntok, cuts] of [[96, 19, [0, 8, 16]], [64, 64, [0, 16, 24, 48]], [2048, 13, [0, 8]], [32, 8, [0]]] as const) {
        const x = base;
        const whole = x + ntok * n * 4;
        const parts = whole + q8bBytes(build, n, ntok);
        const tile = parts + q8bBytes(build, n, ntok);
        const f32 = new Float32Array(memory.buffer, x, ntok * n);
        for (let i = 0; i < f32.length; i++) f32[i] = Math.sin(i * 0.37) * (1 + (i % 7));
        const u8 = new Uint8Array(memory.buffer);
        // Garbage where the padding goes: each must write its own zeros.
        u8.fill(0xa5, whole, tile + q8bBytes(build, n, 16));
        e.quantize_q8b(x, n, ntok, whole);
        cuts.forEach((t0, i) => {
          const t1 = cuts[i + 1] ?? ntok;
          e.quantize_q8b(x + t0 * n * 4, n, t1 - t0, tile);
          for (const [from, to, bytes] of q8bPieces(build, n, ntok, t0, t1)) u8.copyWithin(parts + to, tile + from, tile + from + bytes);
        });
        // The relaxed build's pairs blocks end in 16 bytes nothing writes or reads.
        const pairs = build === "relaxed" ? q8bBytes("simd", n, ntok) : Infinity;
        const differ = [];
        for (let i = 0; i < q8bBytes(build, n, ntok); i++) if (u8[whole + i] !== u8[parts + i] && !(i >= pairs && (i - pairs) % 320 >= 304)) differ.push(i);
        expect(differ, `${build} ${n} × ${ntok} cut at ${cuts}`).toEqual([]);
      }
    }
    expect(() => q8bPieces("simd", 32, 16, 4, 8)).toThrow(RangeError);
  });
});

describe("the layout's total is what a placed engine allocates", () => {
  const shape = (s: Shape) => async (): Promise<Header> => stablelmHeader(s);
  const cases: [string, () => Promise<Header>, WasmEngineOptions & PartOptions & ThreadOptions][] = [
    ["tiny Q4_0, defaults", shape(SHAPES.tiny), {}],
    ["tiny Q4_0, 3 threads (control block, 2 scratch regions, 3 tiles)", shape(SHAPES.tiny), { threads: 3 }],
    ["510-row vocabulary, Q8_0, 2 threads, chunk 5", shape({ vocab: 510, hidden: 256, ffn: 544, layers: 2, heads: 4, type: TensorType.Q8_0 }), { threads: 2, prefillChunk: 5, contextLength: 64 }],
    ["tiny Q8_0, context 100, 3 sequences, chunk 5", shape({ ...SHAPES.tiny, type: TensorType.Q8_0 }), { contextLength: 100, sequences: 3, prefillChunk: 5 }],
    ["tiny F16, chunk 1", shape({ ...SHAPES.tiny, type: TensorType.F16 }), { prefillChunk: 1 }],
    ["510-row vocabulary, hidden 256, Q4_0 + Q6_K head (padded 4-row groups)", shape({ vocab: 510, hidden: 256, ffn: 512, layers: 2, heads: 4, type: TensorType.Q4_0, outputType: TensorType.Q6_K }), { contextLength: 64 }],
    ["full2l Q4_0 + Q6_K head, context 256, 1 sequence, chunk 32", shape({ ...SHAPES.full2l, outputType: TensorType.Q6_K }), { contextLength: 256, sequences: 1, prefillChunk: 32 }],
    ["510-row vocabulary, hidden 256, Q4_K layers + Q5_K head (repacked larger than the file), 2 threads", shape({ vocab: 510, hidden: 256, ffn: 512, layers: 2, heads: 4, type: TensorType.Q4_K, outputType: TensorType.Q5_K }), { contextLength: 64, threads: 2 }],
    ["510-row vocabulary, hidden 256, Q3_K layers + Q2_K head (Q3KR, Q2KR: 510 rows, a partial last group), 2 threads", shape({ vocab: 510, hidden: 256, ffn: 512, layers: 2, heads: 4, type: TensorType.Q3_K, outputType: TensorType.Q2_K }), { contextLength: 64, threads: 2 }],
    ["full2l Q4_0, layer 1 only (a layer shard)", shape(SHAPES.full2l), { contextLength: 256, sequences: 2, prefillChunk: 32, layers: [1, 2], logitsRows: 0, embedding: false }],
    ["full2l Q4_0, 50176 head rows only (a head shard)", async () => headSlice(stablelmHeader(SHAPES.full2l), 50176), { contextLength: 256, layers: [0, 0], logitsRows: 50176, embedding: false }],
    ["1.6B Q4_0, context 64, 1 sequence", shape(SHAPES["1_6b"]), { contextLength: 64, sequences: 1 }],
    ["tiny-parallel F16 file (GQA, qk-norm, parallel residual, no biases)", async () => headerOf(await synthGGUF("tiny-parallel", "f16")), { contextLength: 128 }],
  ];
  for (const [name, header, opts] of cases) {
    it(name, async () => {
      const h = await header();
      const config = configFromGGUF(h.metadata, h.tensorByName);
      const totals = BUILDS.map((build) => {
        const { used, layoutTotal } = allocated(h, build, opts);
        expect(used, build).toBe(layoutTotal);
        expect(engineLayout(config, h.tensorByName, { ...opts, build }).total, build).toBe(used);
        return used;
      });
      // The planner's "max" is the largest build's (relaxed: its Q8B has a second panel).
      expect(engineLayout(config, h.tensorByName, { ...opts, build: "max" }).total).toBe(Math.max(...totals));
      expect(totals[BUILDS.indexOf("relaxed")]).toBe(Math.max(...totals));
    });
  }

  it("a whole-model layout places every tensor of the file, and nothing else", () => {
    const h = stablelmHeader(SHAPES.tiny);
    const config = configFromGGUF(h.metadata, h.tensorByName);
    const layout = engineLayout(config, h.tensorByName, { build: "simd" });
    expect([...layout.tensors.keys()].sort()).toEqual(h.tensors.map((t) => t.name).sort());
    expect(modelTensors(config).map((t) => t.name).sort()).toEqual(h.tensors.map((t) => t.name).sort());
  });
});

describe("shard plans cover the engine's layout of every shard, for every build", () => {
  const plans: [string, Shape, number, number, number][] = [
    ["tiny, 19 MiB", SHAPES.tiny, 19, 256, 2],
    ["full2l, 80 MiB, context 256", SHAPES.full2l, 80, 256, 1],
    ["1.6B, 120 MiB, context 2048", SHAPES["1_6b"], 120, 2048, 1],
    ["1.6B with a Q6_K head, 120 MiB, context 512", { ...SHAPES["1_6b"], outputType: TensorType.Q6_K }, 120, 512, 1],
    ["1.6B Q5_K layers, Q6_K head, 120 MiB, context 512", { ...SHAPES["1_6b"], type: TensorType.Q5_K, outputType: TensorType.Q6_K }, 120, 512, 1],
    ["1.6B Q3_K layers, Q6_K head, 120 MiB, context 512", { ...SHAPES["1_6b"], type: TensorType.Q3_K, outputType: TensorType.Q6_K }, 120, 512, 1],
  ];
  for (const [name, s, budgetMb, contextLength, sequences] of plans) {
    it(name, () => {
      const plan = planShards(stablelmHeader(s), { budgetBytes: budgetMb * 2 ** 20, contextLength, sequences });
      for (const build of BUILDS) {
        const { kernels } = newKernels({ modules, force: build, warmup: false });
        expect(kernels.heapBase, build).toBeLessThanOrEqual(KERNEL_RESERVE);
        for (const spec of plan.shards) {
          const part = shardPart(plan, spec);
          const layout = engineLayout(plan.model.config, part.tensors, { ...part.options, build } satisfies LayoutOptions);
          expect(kernels.heapBase + layout.total, `${spec.script} (${build})`).toBeLessThanOrEqual(spec.maxPages * 65536);
        }
      }
    });
  }
});

function headerOf(path: string): Promise<Header> {
  return openGGUF(path).then(async (f) => {
    await f.close();
    return f;
  });
}

/** A header whose output.weight is rows [0, rows) of the original (what a head shard's engine sees). */
function headSlice(h: ReturnType<typeof stablelmHeader>, rows: number): Header {
  const out = h.tensorByName.get("output.weight")!;
  const slice = { ...out, dims: [out.dims[0], rows], byteLength: (out.byteLength / out.dims[1]) * rows, count: out.dims[0] * rows };
  return { metadata: h.metadata, tensorByName: new Map(h.tensorByName).set("output.weight", slice) };
}
