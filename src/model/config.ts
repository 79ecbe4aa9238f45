/**
 * StableLM hyper-parameters from GGUF metadata and tensor presence (docs/model.md,
 * Metadata keys and The parallel-residual flag).
 * Names follow the HF config so the two can be compared side by side.
 */
import { metaNumber, metaString, requireNumber } from "../gguf/metadata";
import type { Metadata, TensorInfo } from "../gguf/types";

export interface StableLMConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  /** Leading dims of each q/k head that are rotated (partial NeoX rotary). */
  rotaryDim: number;
  ropeTheta: number;
  layerNormEps: number;
  contextLength: number;
  /** 12B layout: attention and MLP both read input_layernorm's output. Decided by ffn_norm's absence, as llama.cpp does. */
  parallelResidual: boolean;
  /** 12B layout: per-head LayerNorm (no bias) on q and k before rotary. */
  qkNorm: boolean;
}

export function configFromGGUF(metadata: Metadata, tensors: Map<string, TensorInfo>): StableLMConfig {
  const arch = metaString(metadata, "general.architecture");
  if (arch !== "stablelm") throw new Error(`general.architecture is ${JSON.stringify(arch ?? null)}; edgelm runs "stablelm" models`);
  const k = (key: string) => `stablelm.${key}`;
  const hiddenSize = requireNumber(metadata, k("embedding_length"));
  const numLayers = requireNumber(metadata, k("block_count"));
  const numHeads = requireNumber(metadata, k("attention.head_count"));
  const numKVHeads = metaNumber(metadata, k("attention.head_count_kv")) ?? numHeads;
  const headDim = hiddenSize / numHeads;
  const rotaryDim = requireNumber(metadata, k("rope.dimension_count"));
  const embd = tensors.get("token_embd.weight");
  if (!embd) throw new Error("tensor token_embd.weight is missing");
  const vocabSize = embd.dims[1];

  const problems: string[] = [];
  if (!Number.isInteger(headDim)) problems.push(`embedding_length ${hiddenSize} is not divisible by head_count ${numHeads}`);
  if (numHeads % numKVHeads !== 0) problems.push(`head_count ${numHeads} is not a multiple of head_count_kv ${numKVHeads}`);
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim) problems.push(`rope.dimension_count ${rotaryDim} must be even and ≤ head size ${headDim}`);
  if (problems.length) throw new Error(`bad stablelm config: ${problems.join("; ")}`);

  const hasFfnNorm = (i: number) => tensors.has(`blk.${i}.ffn_norm.weight`);
  const parallelResidual = !hasFfnNorm(0);
  for (let i = 1; i < numLayers; i++) {
    if (hasFfnNorm(i) === parallelResidual) throw new Error(`layers disagree on blk.N.ffn_norm (layer 0 ${parallelResidual ? "lacks" : "has"} it, layer ${i} does not)`);
  }
  return {
    vocabSize,
    hiddenSize,
    intermediateSize: requireNumber(metadata, k("feed_forward_length")),
    numLayers,
    numHeads,
    numKVHeads,
    headDim,
    rotaryDim,
    ropeTheta: metaNumber(metadata, k("rope.freq_base")) ?? 10000,
    layerNormEps: metaNumber(metadata, k("attention.layer_norm_epsilon")) ?? 1e-5,
    contextLength: metaNumber(metadata, k("context_length")) ?? 4096,
    parallelResidual,
    qkNorm: tensors.has("blk.0.attn_q_norm.weight"),
  };
}
