/**
 * StableLM tensors by role, with GGUF names straight from SPEC §3.3. Matrices
 * keep their file bytes (any supported type); vectors are f32.
 */
import { dequantize, layoutOf, typeName } from "../gguf/quant";
import type { TensorInfo, TensorType } from "../gguf/types";
import type { StableLMConfig } from "./config";

/** A row-major [rows × cols] matrix in its stored type (ggml dims [cols, rows]). */
export interface Matrix {
  name: string;
  type: TensorType;
  rows: number;
  cols: number;
  bytes: Uint8Array;
}

export interface Norm {
  weight: Float32Array;
  bias: Float32Array;
}

export interface LayerWeights {
  attnNorm: Norm;
  q: Matrix;
  k: Matrix;
  v: Matrix;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  /** [numHeads × headDim] and [numKVHeads × headDim]: one weight vector per head (12B). */
  qNorm?: Float32Array;
  kNorm?: Float32Array;
  o: Matrix;
  /** Absent in the parallel-residual layout. */
  ffnNorm?: Norm;
  gate: Matrix;
  up: Matrix;
  down: Matrix;
}

export interface ModelWeights {
  embed: Matrix;
  layers: LayerWeights[];
  outputNorm: Norm;
  output: Matrix;
}

export type TensorReader = (info: TensorInfo) => Promise<Uint8Array>;

/** Reads the tensors of layers [firstLayer, endLayer) (all by default) plus embedding and head. */
export async function loadWeights(
  config: StableLMConfig,
  tensors: Map<string, TensorInfo>,
  read: TensorReader,
  range: { firstLayer?: number; endLayer?: number } = {},
): Promise<ModelWeights> {
  const H = config.hiddenSize;
  const kvDim = config.numKVHeads * config.headDim;

  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (!t) throw new Error(`tensor ${name} is missing`);
    return t;
  };
  const matrix = async (name: string, rows: number, cols: number): Promise<Matrix> => {
    const t = info(name);
    if (t.dims.length !== 2 || t.dims[0] !== cols || t.dims[1] !== rows) {
      throw new Error(`tensor ${name} has dims [${t.dims.join(", ")}], expected [${cols}, ${rows}]`);
    }
    layoutOf(t.type); // unsupported types fail here, by name
    return { name, type: t.type, rows, cols, bytes: await read(t) };
  };
  const vector = async (name: string, length: number, optional = false): Promise<Float32Array | undefined> => {
    const t = tensors.get(name);
    if (!t) {
      if (optional) return undefined;
      throw new Error(`tensor ${name} is missing`);
    }
    if (t.count !== length) throw new Error(`tensor ${name} has ${t.count} elements, expected ${length}`);
    try {
      return dequantize(t.type, await read(t), length);
    } catch (e) {
      throw new Error(`tensor ${name} (${typeName(t.type)}): ${(e as Error).message}`);
    }
  };
  // A missing norm bias is zeros (the 12B config says use_norm_bias: false; SPEC §1.2).
  const norm = async (prefix: string, optional = false): Promise<Norm | undefined> => {
    const weight = await vector(`${prefix}.weight`, H, optional);
    if (!weight) return undefined;
    return { weight, bias: (await vector(`${prefix}.bias`, H, true)) ?? new Float32Array(H) };
  };

  const first = range.firstLayer ?? 0;
  const end = range.endLayer ?? config.numLayers;
  if (first < 0 || end > config.numLayers || first > end) throw new Error(`layer range [${first}, ${end}) is outside 0..${config.numLayers}`);
  const layers: LayerWeights[] = [];
  for (let i = first; i < end; i++) {
    const p = `blk.${i}`;
    layers[i] = {
      attnNorm: (await norm(`${p}.attn_norm`))!,
      q: await matrix(`${p}.attn_q.weight`, H, H),
      k: await matrix(`${p}.attn_k.weight`, kvDim, H),
      v: await matrix(`${p}.attn_v.weight`, kvDim, H),
      qBias: await vector(`${p}.attn_q.bias`, H, true),
      kBias: await vector(`${p}.attn_k.bias`, kvDim, true),
      vBias: await vector(`${p}.attn_v.bias`, kvDim, true),
      qNorm: config.qkNorm ? await vector(`${p}.attn_q_norm.weight`, H) : undefined,
      kNorm: config.qkNorm ? await vector(`${p}.attn_k_norm.weight`, kvDim) : undefined,
      o: await matrix(`${p}.attn_output.weight`, H, H),
      ffnNorm: config.parallelResidual ? undefined : await norm(`${p}.ffn_norm`),
      gate: await matrix(`${p}.ffn_gate.weight`, config.intermediateSize, H),
      up: await matrix(`${p}.ffn_up.weight`, config.intermediateSize, H),
      down: await matrix(`${p}.ffn_down.weight`, H, config.intermediateSize),
    };
  }
  return {
    embed: await matrix("token_embd.weight", config.vocabSize, H),
    layers,
    outputNorm: (await norm("output_norm"))!,
    output: await matrix("output.weight", config.vocabSize, H),
  };
}

/** Row r of a matrix as f32 (into `out`). */
export function matrixRow(m: Matrix, r: number, out: Float32Array): Float32Array {
  const { blockSize, blockBytes } = layoutOf(m.type);
  const rowBytes = (m.cols / blockSize) * blockBytes;
  return dequantize(m.type, m.bytes.subarray(r * rowBytes, (r + 1) * rowBytes), m.cols, out);
}
