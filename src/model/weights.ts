/**
 * StableLM tensors by role for the reference pass, read through the tensor
 * table (./tensors.ts). Matrices keep their file bytes (any supported type);
 * vectors are f32.
 */
import { dequantize, layoutOf, typeName } from "../gguf/quant";
import { checkBlockScales } from "../gguf/scale-check";
import type { TensorInfo, TensorType } from "../gguf/types";
import type { StableLMConfig } from "./config";
import { embeddingTensor, findTensor, headOf, headTensors, layerOf, layerTensors, type Layer, type ModelTensor, type NormParams, type TensorRole } from "./tensors";

/** A row-major [rows × cols] matrix in its stored type (ggml dims [cols, rows]). */
export interface Matrix {
  name: string;
  type: TensorType;
  rows: number;
  cols: number;
  bytes: Uint8Array;
}

export type Norm = NormParams<Float32Array>;
export type LayerWeights = Layer<Matrix, Float32Array>;

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
  const first = range.firstLayer ?? 0;
  const end = range.endLayer ?? config.numLayers;
  if (first < 0 || end > config.numLayers || first > end) throw new Error(`layer range [${first}, ${end}) is outside 0..${config.numLayers}`);
  const zeros = new Float32Array(config.hiddenSize);

  const load = async (t: ModelTensor): Promise<Matrix | Float32Array | undefined> => {
    const info = findTensor(tensors, t);
    if (!info) return undefined;
    try {
      layoutOf(info.type); // unsupported types fail here, before a byte is read
    } catch (e) {
      throw new Error(`tensor ${t.name}: ${(e as Error).message}`);
    }
    const bytes = await read(info);
    checkBlockScales(info, bytes);
    if (t.kind === "matrix") return { name: t.name, type: info.type, rows: t.rows, cols: t.cols, bytes };
    try {
      return dequantize(info.type, bytes, t.length);
    } catch (e) {
      throw new Error(`tensor ${t.name} (${typeName(info.type)}): ${(e as Error).message}`);
    }
  };
  const held = async (list: ModelTensor[]) => {
    const byRole = new Map<TensorRole, Matrix | Float32Array>();
    for (const t of list) {
      const x = await load(t);
      if (x) byRole.set(t.role, x);
    }
    return byRole;
  };

  const layers: LayerWeights[] = [];
  for (let i = first; i < end; i++) layers[i] = layerOf<Matrix, Float32Array>(await held(layerTensors(config, i)), zeros);
  const embed = (await load(embeddingTensor(config))) as Matrix;
  return { embed, layers, ...headOf<Matrix, Float32Array>(await held(headTensors(config)), zeros) };
}

/** Row r of a matrix as f32 (into `out`). */
export function matrixRow(m: Matrix, r: number, out: Float32Array): Float32Array {
  const { blockSize, blockBytes } = layoutOf(m.type);
  const rowBytes = (m.cols / blockSize) * blockBytes;
  return dequantize(m.type, m.bytes.subarray(r * rowBytes, (r + 1) * rowBytes), m.cols, out);
}
