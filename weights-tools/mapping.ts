/**
 * The StableLM HF → GGUF mapping (docs/model.md, Tensors / Metadata keys) shared by `convert` and `synth`, so a
 * synthetic model written straight to GGUF is byte-identical to converting its HF folder.
 * PyTorch [out, in] row-major is already ggml ne [in, out]: no transposition, dims just reverse.
 */
import { bool, f32, str, u32 } from "../src/gguf/metadata";
import { quantize, tensorByteLength } from "../src/gguf/quant";
import { TensorType, type Metadata } from "../src/gguf/types";
import type { TensorSpec } from "../src/gguf/writer";
import { fileTypeOf, isQuantizedOutType, tensorTypes, type OutType, type TypeChoice } from "./quant-mix";
import type { TensorSource } from "./safetensors";
import type { StableLMParams } from "./stablelm-config";

export { isOutType, OUT_TYPES, type OutType } from "./quant-mix";

/** How a GGUF tensor's values are obtained from HF tensors. */
export type Origin =
  | { kind: "copy"; hf: string }
  /** 12B per-head q/k LayerNorm weights, stacked into [n_head, head_dim]. */
  | { kind: "stack"; hf: string[] }
  /** A LayerNorm bias the checkpoint omits (12B `use_norm_bias: false`): zeros, since llama.cpp requires it. */
  | { kind: "zeros"; hf: string };

export interface PlannedTensor {
  /** GGUF name. */
  name: string;
  /** PyTorch-order shape of the values (rows first). */
  shape: number[];
  origin: Origin;
  /** Norm weights and 1-D tensors stay F32 whatever the file type. */
  keepF32: boolean;
}

export interface ExpectedHFTensor {
  name: string;
  shape: number[];
  /** LayerNorm biases may be omitted and are then zeros (docs/model.md, Hyper-parameters). */
  mayBeAbsent?: boolean;
}

const L = (i: number) => `model.layers.${i}`;

/** The HF tensors a checkpoint with these hyper-parameters holds, in transformers' state_dict order. */
export function expectedHFTensors(hp: StableLMParams): ExpectedHFTensor[] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKVHeads, headDim, vocabSize: V } = hp;
  const kv = numKVHeads * headDim;
  const out: ExpectedHFTensor[] = [{ name: "model.embed_tokens.weight", shape: [V, H] }];
  for (let i = 0; i < hp.numLayers; i++) {
    const a = `${L(i)}.self_attn`;
    out.push({ name: `${a}.q_proj.weight`, shape: [H, H] });
    if (hp.useQkvBias) out.push({ name: `${a}.q_proj.bias`, shape: [H] });
    out.push({ name: `${a}.k_proj.weight`, shape: [kv, H] });
    if (hp.useQkvBias) out.push({ name: `${a}.k_proj.bias`, shape: [kv] });
    out.push({ name: `${a}.v_proj.weight`, shape: [kv, H] });
    if (hp.useQkvBias) out.push({ name: `${a}.v_proj.bias`, shape: [kv] });
    out.push({ name: `${a}.o_proj.weight`, shape: [H, H] });
    if (hp.qkLayernorm) {
      for (let h = 0; h < numHeads; h++) out.push({ name: `${a}.q_layernorm.norms.${h}.weight`, shape: [headDim] });
      for (let h = 0; h < numKVHeads; h++) out.push({ name: `${a}.k_layernorm.norms.${h}.weight`, shape: [headDim] });
    }
    out.push({ name: `${L(i)}.mlp.gate_proj.weight`, shape: [I, H] });
    out.push({ name: `${L(i)}.mlp.up_proj.weight`, shape: [I, H] });
    out.push({ name: `${L(i)}.mlp.down_proj.weight`, shape: [H, I] });
    out.push({ name: `${L(i)}.input_layernorm.weight`, shape: [H] });
    out.push({ name: `${L(i)}.input_layernorm.bias`, shape: [H], mayBeAbsent: true });
    if (!hp.parallelResidual) {
      out.push({ name: `${L(i)}.post_attention_layernorm.weight`, shape: [H] });
      out.push({ name: `${L(i)}.post_attention_layernorm.bias`, shape: [H], mayBeAbsent: true });
    }
  }
  out.push({ name: "model.norm.weight", shape: [H] });
  out.push({ name: "model.norm.bias", shape: [H], mayBeAbsent: true });
  if (!hp.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [V, H] });
  return out;
}

/**
 * The GGUF tensors in file order. `present` says which optional HF tensors exist (absent norm
 * biases become zeros; a tied model without lm_head reuses the embedding).
 */
export function planTensors(hp: StableLMParams, present: (hfName: string) => boolean): PlannedTensor[] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKVHeads, headDim, vocabSize: V } = hp;
  const kv = numKVHeads * headDim;
  const out: PlannedTensor[] = [];
  const add = (name: string, shape: number[], hf: string, keepF32 = shape.length === 1) => out.push({ name, shape, origin: { kind: "copy", hf }, keepF32 });
  const norm = (gguf: string, hf: string) => {
    add(`${gguf}.weight`, [H], `${hf}.weight`);
    const bias = `${hf}.bias`;
    if (present(bias)) add(`${gguf}.bias`, [H], bias);
    else out.push({ name: `${gguf}.bias`, shape: [H], origin: { kind: "zeros", hf: bias }, keepF32: true });
  };
  add("token_embd.weight", [V, H], "model.embed_tokens.weight");
  for (let i = 0; i < hp.numLayers; i++) {
    const b = `blk.${i}`;
    const a = `${L(i)}.self_attn`;
    norm(`${b}.attn_norm`, `${L(i)}.input_layernorm`);
    add(`${b}.attn_q.weight`, [H, H], `${a}.q_proj.weight`);
    if (hp.useQkvBias) add(`${b}.attn_q.bias`, [H], `${a}.q_proj.bias`);
    add(`${b}.attn_k.weight`, [kv, H], `${a}.k_proj.weight`);
    if (hp.useQkvBias) add(`${b}.attn_k.bias`, [kv], `${a}.k_proj.bias`);
    add(`${b}.attn_v.weight`, [kv, H], `${a}.v_proj.weight`);
    if (hp.useQkvBias) add(`${b}.attn_v.bias`, [kv], `${a}.v_proj.bias`);
    if (hp.qkLayernorm) {
      const heads = (which: string, n: number) => Array.from({ length: n }, (_, h) => `${a}.${which}_layernorm.norms.${h}.weight`);
      out.push({ name: `${b}.attn_q_norm.weight`, shape: [numHeads, headDim], origin: { kind: "stack", hf: heads("q", numHeads) }, keepF32: true });
      out.push({ name: `${b}.attn_k_norm.weight`, shape: [numKVHeads, headDim], origin: { kind: "stack", hf: heads("k", numKVHeads) }, keepF32: true });
    }
    add(`${b}.attn_output.weight`, [H, H], `${a}.o_proj.weight`);
    if (!hp.parallelResidual) norm(`${b}.ffn_norm`, `${L(i)}.post_attention_layernorm`);
    add(`${b}.ffn_gate.weight`, [I, H], `${L(i)}.mlp.gate_proj.weight`);
    add(`${b}.ffn_up.weight`, [I, H], `${L(i)}.mlp.up_proj.weight`);
    add(`${b}.ffn_down.weight`, [H, I], `${L(i)}.mlp.down_proj.weight`);
  }
  norm("output_norm", "model.norm");
  add("output.weight", [V, H], hp.tieWordEmbeddings && !present("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight");
  return out;
}

/** The element type of each planned tensor in a file of `type` (./quant-mix.ts), and why it differs from the mix's choice when it does. */
export function planTypes(plan: readonly PlannedTensor[], type: OutType, hp: StableLMParams): TypeChoice[] {
  const tensors = plan.map((t) => ({ name: t.name, rowLength: t.shape[t.shape.length - 1], keepF32: t.keepF32 }));
  return tensorTypes(tensors, type, hp);
}

/** The general.* and stablelm.* keys, in the order llama.cpp's converter writes them. */
export function modelMetadata(hp: StableLMParams, type: OutType, name: string): Metadata {
  const m: Metadata = new Map();
  m.set("general.architecture", str("stablelm"));
  m.set("general.name", str(name));
  m.set("stablelm.context_length", u32(hp.maxPositions));
  m.set("stablelm.embedding_length", u32(hp.hiddenSize));
  m.set("stablelm.block_count", u32(hp.numLayers));
  m.set("stablelm.feed_forward_length", u32(hp.intermediateSize));
  m.set("stablelm.rope.dimension_count", u32(hp.rotaryDim));
  m.set("stablelm.attention.head_count", u32(hp.numHeads));
  m.set("stablelm.attention.head_count_kv", u32(hp.numKVHeads));
  m.set("stablelm.use_parallel_residual", bool(hp.parallelResidualKey));
  m.set("stablelm.attention.layer_norm_epsilon", f32(hp.layerNormEps));
  m.set("general.file_type", u32(fileTypeOf(type)));
  if (isQuantizedOutType(type)) m.set("general.quantization_version", u32(2));
  return m;
}

/** About 4M elements per slice: big enough to be fast, small enough that only the output tensor dominates memory. */
function rowsPerChunk(rowLength: number): number {
  return Math.max(1, Math.floor((1 << 22) / rowLength));
}

async function planValues(t: PlannedTensor, src: TensorSource, start: number, count: number): Promise<Float32Array> {
  const o = t.origin;
  if (o.kind === "copy") return src.readRows(o.hf, start, count);
  const rowLength = t.shape[t.shape.length - 1];
  if (o.kind === "zeros") return new Float32Array(count * rowLength);
  const out = new Float32Array(count * rowLength);
  for (let r = 0; r < count; r++) out.set(await src.readRows(o.hf[start + r], 0, 1), r * rowLength);
  return out;
}

/** f32 → bytes of `type`; F32 is a plain byte copy (little-endian, like GGUF). */
function encode(type: TensorType, x: Float32Array): Uint8Array {
  if (type === TensorType.F32) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  return quantize(type, x);
}

/** One tensor's bytes, produced slice by slice into a single output buffer. */
export async function encodeTensor(t: PlannedTensor, type: TensorType, src: TensorSource): Promise<Uint8Array> {
  const rows = t.shape.length === 1 ? 1 : t.shape[0];
  const rowLength = t.shape[t.shape.length - 1];
  const out = new Uint8Array(tensorByteLength(type, [rowLength, rows]));
  const rowBytes = out.length / rows;
  const step = t.origin.kind === "stack" ? rows : rowsPerChunk(rowLength);
  for (let r = 0; r < rows; r += step) {
    const n = Math.min(step, rows - r);
    const x = await planValues(t, src, r, n);
    if (x.length !== n * rowLength) throw new Error(`${t.name}: got ${x.length} values for rows ${r}..${r + n}, expected ${n * rowLength}`);
    out.set(encode(type, x), r * rowBytes);
  }
  return out;
}

/** The GGUF tensor list with lazy data: the writer pulls one tensor at a time. */
export function ggufTensors(plan: PlannedTensor[], type: OutType, hp: StableLMParams, src: TensorSource, warn: (msg: string) => void): TensorSpec[] {
  const types = planTypes(plan, type, hp);
  return plan.map((t, i) => {
    const { type: tt, note } = types[i];
    if (note) warn(note);
    return { name: t.name, type: tt, dims: [...t.shape].reverse(), data: () => encodeTensor(t, tt, src) };
  });
}

/** Checks a source against the expected tensors: missing/mis-shaped → error; absent norm biases and extras reported. */
export function checkSource(hp: StableLMParams, src: TensorSource): { absentBiases: string[]; extras: string[] } {
  const expected = expectedHFTensors(hp);
  const missing: string[] = [];
  const absentBiases: string[] = [];
  const problems: string[] = [];
  for (const e of expected) {
    if (!src.has(e.name)) {
      if (e.mayBeAbsent) absentBiases.push(e.name);
      else missing.push(e.name);
      continue;
    }
    const s = src.shape(e.name);
    if (s.length !== e.shape.length || s.some((d, i) => d !== e.shape[i])) problems.push(`${e.name} has shape [${s.join(", ")}], expected [${e.shape.join(", ")}]`);
  }
  if (hp.tieWordEmbeddings && src.has("lm_head.weight")) {
    const s = src.shape("lm_head.weight");
    const want = [hp.vocabSize, hp.hiddenSize];
    if (s.length !== 2 || s[0] !== want[0] || s[1] !== want[1]) problems.push(`lm_head.weight has shape [${s.join(", ")}], expected [${want.join(", ")}]`);
  }
  if (missing.length) {
    const shown = missing.slice(0, 8).join(", ");
    throw new Error(`checkpoint is missing ${missing.length} tensor(s) the config calls for: ${shown}${missing.length > 8 ? ", …" : ""}`);
  }
  if (problems.length) throw new Error(`unexpected tensor shapes: ${problems.slice(0, 8).join("; ")}${problems.length > 8 ? "; …" : ""}`);
  const known = new Set(expected.map((e) => e.name));
  known.add("lm_head.weight");
  const extras = src.names().filter((n) => !known.has(n));
  return { absentBiases, extras };
}

