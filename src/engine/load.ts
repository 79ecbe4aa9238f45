/**
 * Placement of a GGUF's tensors in WASM memory, and the repack into the
 * kernels' layouts. No node: imports (workerd loads through here).
 *
 * The plan is made from the header alone, before any tensor byte is read:
 * every tensor gets its final address, and the source (a file or a stream)
 * writes its bytes straight there, so the weights never exist as a second full
 * copy in the JS heap. After a tensor has arrived it is finalized in place:
 *
 *   Q4_0 matrices  → Q4R (4-row interleave, `repack_q4_0(p, p)`, same bytes)
 *   Q6_K matrices  → Q6R (`repack_q6_k(p, p)`, same bytes)
 *   Q8_0/F32/F16/BF16 matrices, and the embedding table of any type: as stored
 *   1-D tensors (norms, biases) → f32 (those not stored as F32 are read into a
 *   small JS buffer first and converted; a few KiB each)
 *
 * Nothing here knows the forward pass beyond tensor names and shapes.
 */
import { dequantize, layoutOf, typeName } from "../gguf/quant";
import { TensorType, type TensorInfo } from "../gguf/types";
import type { Arena } from "./arena";
import type { Kernels } from "./kernels";
import type { StableLMConfig } from "../model/config";

/** How the kernels consume a matrix. */
export type MatrixKind = "q4r" | "q8_0" | "q6r" | "f32" | "f16" | "bf16";

/** A row-major [rows × cols] matrix at `ptr` in WASM memory. */
export interface WasmMatrix {
  name: string;
  /** The type in the file. */
  type: TensorType;
  kind: MatrixKind;
  ptr: number;
  rows: number;
  cols: number;
}

/** f32 vectors [H]; a missing bias points at zeros. */
export interface WasmNorm {
  weight: number;
  bias: number;
}

export interface WasmLayer {
  attnNorm: WasmNorm;
  q: WasmMatrix;
  k: WasmMatrix;
  v: WasmMatrix;
  /** f32 [H] / [kvDim]; absent when the model has no qkv bias. */
  qBias?: number;
  kBias?: number;
  vBias?: number;
  /** f32 [numHeads × headDim] / [numKVHeads × headDim]: per-head q/k LayerNorm weights (12B layout). */
  qNorm?: number;
  kNorm?: number;
  o: WasmMatrix;
  /** Absent in the parallel-residual layout. */
  ffnNorm?: WasmNorm;
  gate: WasmMatrix;
  up: WasmMatrix;
  down: WasmMatrix;
}

export interface WasmWeights {
  /** Stored as in the file (rows are read one at a time with a dequantize kernel). */
  embed: WasmMatrix;
  layers: WasmLayer[];
  outputNorm: WasmNorm;
  output: WasmMatrix;
  /** f32 zeros, max(H, headDim) long: the bias of bias-less LayerNorms. */
  zeros: number;
  /** True when some matrix takes int8-quantized activations. */
  quantized: boolean;
}

/** Where one tensor's bytes go, and what to do once they are there. */
export interface Placement {
  info: TensorInfo;
  /** The destination for the tensor's bytes (a view of WASM memory or a small JS buffer). */
  dest(): Uint8Array;
  finalize(): void;
  /**
   * Matrices repacked in 4-row groups can be finalized piece by piece as
   * their bytes arrive: `partBytes` (one group) is the granularity, and
   * finalizePart(start, end) (byte offsets into dest(), multiples of
   * partBytes, or end = the tensor's length) replaces finalize() — used by
   * the Node loader so that the last tensor's repack does not wait for its
   * last byte.
   */
  partBytes?: number;
  finalizePart?(start: number, end: number): void;
}

export interface ModelPlan {
  weights: WasmWeights;
  /** By tensor name; tensors the model does not use are absent (skipped while reading). */
  placements: Map<string, Placement>;
  /** Bytes of WASM memory taken by the weights. */
  weightBytes: number;
}

const SUPPORTED_MATRIX: Partial<Record<TensorType, MatrixKind>> = {
  [TensorType.Q4_0]: "q4r",
  [TensorType.Q8_0]: "q8_0",
  [TensorType.Q6_K]: "q6r",
  [TensorType.F32]: "f32",
  [TensorType.F16]: "f16",
  [TensorType.BF16]: "bf16",
};

/**
 * Allocates every tensor of the model in `arena` and returns the placement of
 * each. Throws, naming the tensor, on a missing tensor, a wrong shape or an
 * unsupported type, before anything is read.
 */
export function planModel(config: StableLMConfig, tensors: Map<string, TensorInfo>, kernels: Kernels, arena: Arena): ModelPlan {
  const k = kernels.exports;
  const H = config.hiddenSize;
  const kvDim = config.numKVHeads * config.headDim;
  const placements = new Map<string, Placement>();
  const start = arena.top;
  const view = (ptr: number, n: number) => () => new Uint8Array(arena.memory.buffer, ptr, n);

  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (!t) throw new Error(`tensor ${name} is missing`);
    return t;
  };

  const matrix = (name: string, rows: number, cols: number, repack = true): WasmMatrix => {
    const t = info(name);
    if (t.dims.length !== 2 || t.dims[0] !== cols || t.dims[1] !== rows) {
      throw new Error(`tensor ${name} has dims [${t.dims.join(", ")}], expected [${cols}, ${rows}]`);
    }
    const kind = SUPPORTED_MATRIX[t.type];
    if (!kind) {
      const names = Object.keys(SUPPORTED_MATRIX).map((x) => typeName(Number(x))).join(", ");
      throw new Error(`tensor ${name}: unsupported tensor type ${typeName(t.type)} (the wasm engine supports ${names})`);
    }
    if (kind !== "f32" && kind !== "f16" && kind !== "bf16" && cols % 32 !== 0) throw new Error(`tensor ${name}: ${cols} columns`);
    if (!repack) {
      const ptr = arena.alloc(t.byteLength, 64);
      placements.set(name, { info: t, dest: view(ptr, t.byteLength), finalize: () => {} });
      return { name, type: t.type, kind, ptr, rows, cols }; // kind unused: rows are read by type
    }
    // Q4R and Q6R have the same bytes per 4-row group as the file; only a last
    // partial group needs padding, hence the larger allocation.
    const bytes = kind === "q4r" ? kernels.q4rBytes(rows, cols) : kind === "q6r" ? kernels.q6rBytes(rows, cols) : t.byteLength;
    const ptr = arena.alloc(Math.max(bytes, t.byteLength), 64);
    const finalize =
      kind === "q4r" ? () => k.repack_q4_0(ptr, ptr, rows, cols) : kind === "q6r" ? () => k.repack_q6_k(ptr, ptr, rows, cols) : () => {};
    const placement: Placement = { info: t, dest: view(ptr, t.byteLength), finalize };
    if (kind === "q4r" || kind === "q6r") {
      // A 4-row group's bytes are the same in the file and in Q4R/Q6R, so a range of whole groups repacks alone.
      const groupBytes = 4 * (kind === "q4r" ? (cols / 32) * 18 : (cols / 256) * 210);
      const repack = kind === "q4r" ? k.repack_q4_0 : k.repack_q6_k;
      placement.partBytes = groupBytes;
      placement.finalizePart = (start, end) => {
        const r0 = (start / groupBytes) * 4;
        const r1 = Math.min(rows, Math.ceil(end / groupBytes) * 4);
        repack(ptr + start, ptr + start, r1 - r0, cols);
      };
    }
    placements.set(name, placement);
    return { name, type: t.type, kind, ptr, rows, cols };
  };

  const vector = (name: string, length: number, optional = false): number | undefined => {
    const t = tensors.get(name);
    if (!t) {
      if (optional) return undefined;
      throw new Error(`tensor ${name} is missing`);
    }
    if (t.count !== length) throw new Error(`tensor ${name} has ${t.count} elements, expected ${length}`);
    layoutOf(t.type);
    const ptr = arena.alloc(length * 4, 64);
    if (t.type === TensorType.F32) {
      placements.set(name, { info: t, dest: view(ptr, length * 4), finalize: () => {} });
    } else {
      let tmp: Uint8Array | undefined;
      placements.set(name, {
        info: t,
        dest: () => (tmp = new Uint8Array(t.byteLength)),
        finalize: () => {
          try {
            dequantize(t.type, tmp!, length, new Float32Array(arena.memory.buffer, ptr, length));
          } catch (e) {
            throw new Error(`tensor ${name} (${typeName(t.type)}): ${(e as Error).message}`);
          }
          tmp = undefined;
        },
      });
    }
    return ptr;
  };

  const zeros = arena.alloc(Math.max(H, config.headDim) * 4, 64); // memory starts zeroed
  // A missing norm bias is zeros (the 12B config says use_norm_bias: false; SPEC §1.2).
  const norm = (prefix: string, optional = false): WasmNorm | undefined => {
    const weight = vector(`${prefix}.weight`, H, optional);
    if (weight === undefined) return undefined;
    return { weight, bias: vector(`${prefix}.bias`, H, true) ?? zeros };
  };

  const layers: WasmLayer[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `blk.${i}`;
    layers.push({
      attnNorm: norm(`${p}.attn_norm`)!,
      q: matrix(`${p}.attn_q.weight`, H, H),
      k: matrix(`${p}.attn_k.weight`, kvDim, H),
      v: matrix(`${p}.attn_v.weight`, kvDim, H),
      qBias: vector(`${p}.attn_q.bias`, H, true),
      kBias: vector(`${p}.attn_k.bias`, kvDim, true),
      vBias: vector(`${p}.attn_v.bias`, kvDim, true),
      qNorm: config.qkNorm ? vector(`${p}.attn_q_norm.weight`, H) : undefined,
      kNorm: config.qkNorm ? vector(`${p}.attn_k_norm.weight`, kvDim) : undefined,
      o: matrix(`${p}.attn_output.weight`, H, H),
      ffnNorm: config.parallelResidual ? undefined : norm(`${p}.ffn_norm`),
      gate: matrix(`${p}.ffn_gate.weight`, config.intermediateSize, H),
      up: matrix(`${p}.ffn_up.weight`, config.intermediateSize, H),
      down: matrix(`${p}.ffn_down.weight`, H, config.intermediateSize),
    });
  }
  // The embedding is read a row at a time by the dequantize kernels, which want the file layout.
  const embed = matrix("token_embd.weight", config.vocabSize, H, false);
  if (embed.kind === "q6r" && H % 256 !== 0) throw new Error(`token_embd.weight: Q6_K rows of ${H}`);
  const outputNorm = norm("output_norm")!;
  const output = matrix("output.weight", config.vocabSize, H);

  const all = [...layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]), output];
  const quantized = all.some((m) => m.kind === "q4r" || m.kind === "q8_0" || m.kind === "q6r");
  return { weights: { embed, layers, outputNorm, output, zeros, quantized }, placements, weightBytes: arena.top - start };
}
