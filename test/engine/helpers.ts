/**
 * Test support for the wasm engine: engines per kernel build, a small
 * hand-made GGUF (any tensor type per role, odd row counts), and the metrics
 * the agreement tests use.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRandom } from "../../src/generate/sampler";
import { encodeGGUF, type TensorSpec } from "../../src/gguf/writer";
import { f32 as metaF32, str, u32 } from "../../src/gguf/metadata";
import { quantize } from "../../src/gguf/quant";
import { TensorType, type Metadata } from "../../src/gguf/types";
import { loadWasmEngineFromStream, type WasmEngine, type WasmEngineOptions } from "../../src/engine/index";
import { compileKernelModules, loadWasmEngine, type FileLoadOptions } from "../../src/engine/node";
import type { BuildKind } from "../../src/engine/kernels";
import { emulatedFusedBuildDir } from "../kernels/fused-emulation";

/**
 * Builds the suites run under: EDGELM_ENGINE_BUILDS (comma list), default simd and scalar.
 * The relaxed build needs Node's flag: EDGELM_ENGINE_BUILDS=relaxed node --experimental-wasm-relaxed-simd node_modules/vitest/vitest.mjs run test/engine
 */
export const BUILDS = (process.env.EDGELM_ENGINE_BUILDS ?? "simd,scalar").split(",").map((s) => s.trim()) as BuildKind[];

/**
 * Loads a file with exactly this kernel build (relaxed only when asked, so the process flag stays
 * off otherwise), on one thread unless asked. relaxed-fused is its emulated form: Node 20 computes
 * the fused dot wrongly on first calls (../kernels/fused-emulation.ts).
 */
export async function engineFor(path: string, build: BuildKind, opts: Omit<FileLoadOptions, "force" | "relaxed" | "buildDir"> = {}): Promise<WasmEngine> {
  const buildDir = build === "relaxed-fused" ? emulatedFusedBuildDir() : undefined;
  const e = await loadWasmEngine(path, { threads: 1, ...opts, force: build, relaxed: build.startsWith("relaxed"), buildDir });
  if (e.kernels.kind !== build) throw new Error(`asked for the ${build} build, got ${e.kernels.kind}: ${e.kernels.reason}`);
  return e;
}

export function streamOf(bytes: Uint8Array, chunk = 1 << 16): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

export async function engineFromBytes(bytes: Uint8Array, build: BuildKind, opts: WasmEngineOptions = {}): Promise<WasmEngine> {
  const { modules, unavailable } = compileKernelModules(build === "relaxed-fused" ? emulatedFusedBuildDir() : undefined);
  return loadWasmEngineFromStream(streamOf(bytes), { ...opts, modules, unavailable, force: build, size: bytes.length });
}

export interface SmallModelSpec {
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  ffn?: number;
  layers?: number;
  vocab?: number;
  rotary?: number;
  /** Type of the layer matrices. */
  matrix?: TensorType;
  embed?: TensorType;
  output?: TensorType;
  parallel?: boolean;
  seed?: number;
  /** Overrides of a tensor's stored type and bytes (bad-input tests). */
  raw?: Record<string, { type: TensorType; bytes: Uint8Array; dims?: number[] }>;
}

/**
 * A random StableLM GGUF in memory. Sizes are free (e.g. hidden 256 so a Q6_K
 * head is possible, a vocabulary that is not a multiple of 4 so the repacks'
 * padding is exercised); the tokenizer is absent, which the engines don't need.
 */
export async function smallGGUF(spec: SmallModelSpec = {}): Promise<Uint8Array> {
  const H = spec.hidden ?? 256;
  const heads = spec.heads ?? 4;
  const kvHeads = spec.kvHeads ?? heads;
  const F = spec.ffn ?? 512;
  const L = spec.layers ?? 2;
  const V = spec.vocab ?? 510;
  const hd = H / heads;
  const kvDim = kvHeads * hd;
  const r = seededRandom(spec.seed ?? 1);
  const rand = (n: number, scale: number, offset = 0) => Float32Array.from({ length: n }, () => offset + (r() * 2 - 1) * scale);
  const tensors: TensorSpec[] = [];
  const add = (name: string, dims: number[], type: TensorType, values: Float32Array) => {
    const raw = spec.raw?.[name];
    tensors.push({ name, dims: raw?.dims ?? dims, type: raw?.type ?? type, data: raw?.bytes ?? quantize(type, values) });
  };
  const mat = (name: string, rows: number, cols: number, type = spec.matrix ?? TensorType.Q4_0) => add(name, [cols, rows], type, rand(rows * cols, 1.7 / Math.sqrt(cols)));
  const vec = (name: string, n: number, scale: number, offset = 0) => add(name, [n], TensorType.F32, rand(n, scale, offset));
  add("token_embd.weight", [H, V], spec.embed ?? TensorType.Q4_0, rand(V * H, 1));
  for (let i = 0; i < L; i++) {
    const p = `blk.${i}`;
    vec(`${p}.attn_norm.weight`, H, 0.2, 1);
    vec(`${p}.attn_norm.bias`, H, 0.1);
    mat(`${p}.attn_q.weight`, H, H);
    mat(`${p}.attn_k.weight`, kvDim, H);
    mat(`${p}.attn_v.weight`, kvDim, H);
    if (spec.parallel) {
      vec(`${p}.attn_q_norm.weight`, H, 0.2, 1);
      vec(`${p}.attn_k_norm.weight`, kvDim, 0.2, 1);
    } else {
      vec(`${p}.attn_q.bias`, H, 0.1);
      vec(`${p}.attn_k.bias`, kvDim, 0.1);
      vec(`${p}.attn_v.bias`, kvDim, 0.1);
      vec(`${p}.ffn_norm.weight`, H, 0.2, 1);
      vec(`${p}.ffn_norm.bias`, H, 0.1);
    }
    mat(`${p}.attn_output.weight`, H, H);
    mat(`${p}.ffn_gate.weight`, F, H);
    mat(`${p}.ffn_up.weight`, F, H);
    mat(`${p}.ffn_down.weight`, H, F);
  }
  vec("output_norm.weight", H, 0.2, 1);
  if (!spec.parallel) vec("output_norm.bias", H, 0.1); // the parallel model also tests "missing norm bias = zeros"
  mat("output.weight", V, H, spec.output ?? spec.matrix ?? TensorType.Q4_0);
  const metadata: Metadata = new Map([
    ["general.architecture", str("stablelm")],
    ["stablelm.embedding_length", u32(H)],
    ["stablelm.block_count", u32(L)],
    ["stablelm.attention.head_count", u32(heads)],
    ["stablelm.attention.head_count_kv", u32(kvHeads)],
    ["stablelm.rope.dimension_count", u32(spec.rotary ?? hd / 4)],
    ["stablelm.feed_forward_length", u32(F)],
    ["stablelm.context_length", u32(4096)],
    ["stablelm.attention.layer_norm_epsilon", metaF32(1e-5)],
  ]);
  return encodeGGUF({ metadata, tensors });
}

/** max |a − b| / max |b| over one position's logits: the error relative to the logits' scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

export function top2(x: ArrayLike<number>): { top: number; margin: number; scale: number } {
  let a = 0;
  let b = -1;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    scale = Math.max(scale, Math.abs(x[i]));
    if (i === 0) continue;
    if (x[i] > x[a]) {
      b = a;
      a = i;
    } else if (b < 0 || x[i] > x[b]) b = i;
  }
  return { top: a, margin: x[a] - x[b], scale };
}

/**
 * Teacher-forced top-1 agreement with the reference, counting only positions
 * whose reference top-2 margin is clear: > `clearFrac` of max |logit| at that
 * position (int8 activations move logits by ~1–2% of that scale, so a smaller
 * margin can flip on rounding alone).
 */
export function agreement(ours: Float32Array[], ref: Float32Array[], clearFrac = 0.01): { clear: number; agree: number; total: number } {
  let clear = 0;
  let agree = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = top2(ref[i]);
    if (r.margin <= clearFrac * r.scale) continue;
    clear++;
    if (top2(ours[i]).top === r.top) agree++;
  }
  return { clear, agree, total: ref.length };
}

export function randomTokens(n: number, vocab: number, seed = 1): number[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

export const fileBytes = (path: string) => new Uint8Array(readFileSync(path));

/** "same" when two float arrays are bit-identical, else where they first differ (fast where toEqual on 100k floats is not). */
export function sameBits(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `first difference at ${i}: ${a[i]} vs ${b[i]}`;
  return "same";
}

/** Writes small GGUFs to temp files for one test file; `remove` deletes them (call it in afterAll). */
export function tempModels(tag: string): { file(spec: SmallModelSpec): Promise<string>; remove(): void } {
  const files: string[] = [];
  return {
    async file(spec) {
      const file = join(tmpdir(), `edgelm-${tag}-${process.pid}-${files.length}.gguf`);
      writeFileSync(file, await smallGGUF(spec));
      files.push(file);
      return file;
    },
    remove: () => files.forEach((f) => rmSync(f, { force: true })),
  };
}

/** The index of the largest logit (greedy decoding in the tests). */
export const argmax = (x: Float32Array) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);
