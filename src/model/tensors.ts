/**
 * The one description of a StableLM model's tensors (docs/model.md, Tensors):
 * for a config, every tensor's GGUF name, role, shape, layer and whether the
 * file may leave it out. The reference loader, the WASM engine's layout and
 * the shard planner all read the model through this table, so a tensor is
 * named, shaped and checked in one place.
 */
import type { TensorInfo } from "../gguf/types";
import type { StableLMConfig } from "./config";

export type LayerRole =
  | "attnNorm" | "attnNormBias"
  | "q" | "qBias" | "k" | "kBias" | "v" | "vBias"
  | "qNorm" | "kNorm"
  | "o"
  | "ffnNorm" | "ffnNormBias"
  | "gate" | "up" | "down";
export type HeadRole = "outputNorm" | "outputNormBias" | "output";
export type TensorRole = "embed" | LayerRole | HeadRole;

interface TensorEntry {
  /** The GGUF name, as llama.cpp's converter writes it. */
  name: string;
  role: TensorRole;
  /** The transformer layer; undefined for the embedding and the head. */
  layer?: number;
  /**
   * May be absent from the file: a missing norm bias is zeros (the 12B config
   * says use_norm_bias: false; docs/model.md, Hyper-parameters), a missing
   * q/k/v bias is no bias.
   */
  optional: boolean;
}

/** Row-major [rows × cols]; the file's ggml dims are [cols, rows]. */
export interface MatrixTensor extends TensorEntry {
  kind: "matrix";
  rows: number;
  cols: number;
}

/** `length` values, whatever its dims (the stacked per-head q/k norms are [headDim, heads]). */
export interface VectorTensor extends TensorEntry {
  kind: "vector";
  length: number;
}

export type ModelTensor = MatrixTensor | VectorTensor;

const matrix = (name: string, role: TensorRole, rows: number, cols: number, layer?: number): MatrixTensor => ({ name, role, layer, optional: false, kind: "matrix", rows, cols });
const vector = (name: string, role: TensorRole, length: number, optional: boolean, layer?: number): VectorTensor => ({ name, role, layer, optional, kind: "vector", length });

/** token_embd.weight [V × H]. */
export function embeddingTensor(c: StableLMConfig): MatrixTensor {
  return matrix("token_embd.weight", "embed", c.vocabSize, c.hiddenSize);
}

/**
 * Layer l's tensors in the converter's order. ffn_norm is not part of a
 * parallel-residual layer, and the per-head q/k norms only of a qkNorm model
 * (docs/model.md, The parallel-residual flag).
 */
export function layerTensors(c: StableLMConfig, l: number): ModelTensor[] {
  const H = c.hiddenSize;
  const F = c.intermediateSize;
  const kvDim = c.numKVHeads * c.headDim;
  const p = `blk.${l}`;
  return [
    vector(`${p}.attn_norm.weight`, "attnNorm", H, false, l),
    vector(`${p}.attn_norm.bias`, "attnNormBias", H, true, l),
    matrix(`${p}.attn_q.weight`, "q", H, H, l),
    vector(`${p}.attn_q.bias`, "qBias", H, true, l),
    matrix(`${p}.attn_k.weight`, "k", kvDim, H, l),
    vector(`${p}.attn_k.bias`, "kBias", kvDim, true, l),
    matrix(`${p}.attn_v.weight`, "v", kvDim, H, l),
    vector(`${p}.attn_v.bias`, "vBias", kvDim, true, l),
    ...(c.qkNorm ? [vector(`${p}.attn_q_norm.weight`, "qNorm", H, false, l), vector(`${p}.attn_k_norm.weight`, "kNorm", kvDim, false, l)] : []),
    matrix(`${p}.attn_output.weight`, "o", H, H, l),
    ...(c.parallelResidual ? [] : [vector(`${p}.ffn_norm.weight`, "ffnNorm", H, false, l), vector(`${p}.ffn_norm.bias`, "ffnNormBias", H, true, l)]),
    matrix(`${p}.ffn_gate.weight`, "gate", F, H, l),
    matrix(`${p}.ffn_up.weight`, "up", F, H, l),
    matrix(`${p}.ffn_down.weight`, "down", H, F, l),
  ];
}

/** The final LayerNorm and the LM head: output_norm.{weight,bias}, output.weight [V × H]. */
export function headTensors(c: StableLMConfig): ModelTensor[] {
  const H = c.hiddenSize;
  return [
    vector("output_norm.weight", "outputNorm", H, false),
    vector("output_norm.bias", "outputNormBias", H, true),
    matrix("output.weight", "output", c.vocabSize, H),
  ];
}

/** Every tensor of the model: the embedding, layers 0..L−1, the head. */
export function modelTensors(c: StableLMConfig): ModelTensor[] {
  return [embeddingTensor(c), ...Array.from({ length: c.numLayers }, (_, l) => layerTensors(c, l)).flat(), ...headTensors(c)];
}

/**
 * The file's entry for `t`, checked against the table: undefined when an
 * optional tensor is absent; throws, naming the tensor, when a required one is
 * missing or a shape is wrong.
 */
export function findTensor(tensors: ReadonlyMap<string, TensorInfo>, t: ModelTensor): TensorInfo | undefined {
  const info = tensors.get(t.name);
  if (!info) {
    if (t.optional) return undefined;
    throw new Error(`tensor ${t.name} is missing`);
  }
  if (t.kind === "matrix") {
    if (info.dims.length !== 2 || info.dims[0] !== t.cols || info.dims[1] !== t.rows) {
      throw new Error(`tensor ${t.name} has dims [${info.dims.join(", ")}], expected [${t.cols}, ${t.rows}]`);
    }
  } else if (info.count !== t.length) {
    throw new Error(`tensor ${t.name} has ${info.count} elements, expected ${t.length}`);
  }
  return info;
}

/** A LayerNorm's parameters; a missing bias is zeros. */
export interface NormParams<V> {
  weight: V;
  bias: V;
}

/** One transformer layer by role: M is how a holder keeps a matrix, V a vector. */
export interface Layer<M, V> {
  attnNorm: NormParams<V>;
  q: M;
  k: M;
  v: M;
  /** Absent when the model has no qkv bias (12B). */
  qBias?: V;
  kBias?: V;
  vBias?: V;
  /** [numHeads × headDim] and [numKVHeads × headDim]: one weight vector per head (12B). */
  qNorm?: V;
  kNorm?: V;
  o: M;
  /** Absent in the parallel-residual layout. */
  ffnNorm?: NormParams<V>;
  gate: M;
  up: M;
  down: M;
}

/** The final LayerNorm and the LM head by role. */
export interface Head<M, V> {
  outputNorm: NormParams<V>;
  output: M;
}

/**
 * Assembles a layer from the values a holder made for its present tensors
 * (`held` by role; absent optional tensors have none). `zeros` stands in for
 * a missing norm bias.
 */
export function layerOf<M, V>(held: ReadonlyMap<TensorRole, M | V>, zeros: V): Layer<M, V> {
  const m = (r: LayerRole) => held.get(r) as M;
  const v = (r: LayerRole) => held.get(r) as V | undefined;
  return {
    attnNorm: { weight: v("attnNorm")!, bias: v("attnNormBias") ?? zeros },
    q: m("q"),
    k: m("k"),
    v: m("v"),
    qBias: v("qBias"),
    kBias: v("kBias"),
    vBias: v("vBias"),
    qNorm: v("qNorm"),
    kNorm: v("kNorm"),
    o: m("o"),
    ffnNorm: held.has("ffnNorm") ? { weight: v("ffnNorm")!, bias: v("ffnNormBias") ?? zeros } : undefined,
    gate: m("gate"),
    up: m("up"),
    down: m("down"),
  };
}

/** Assembles the head from the values a holder made for its present tensors, as layerOf. */
export function headOf<M, V>(held: ReadonlyMap<TensorRole, M | V>, zeros: V): Head<M, V> {
  return {
    outputNorm: { weight: held.get("outputNorm") as V, bias: (held.get("outputNormBias") as V | undefined) ?? zeros },
    output: held.get("output") as M,
  };
}
