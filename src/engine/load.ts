/**
 * Placement of a GGUF's tensors in WASM memory by the engine's layout
 * (./layout.ts), and the repack into the kernels' layouts. No node: imports
 * (workerd loads through here).
 *
 * The layout is made from the header alone, before any tensor byte is read:
 * every tensor has its final address, and the source (a file or a stream)
 * writes its bytes straight there, so the weights never exist as a second full
 * copy in the JS heap. After a tensor has arrived it is finalized in place:
 * Q4_0 → Q4R (`repack_q4_0(p, p)`), Q6_K → Q6R (`repack_q6_k(p, p)`), the
 * same bytes per 4-row group; Q4_K → Q4KR, Q5_K → Q5KR, Q8_0 → Q8R
 * (`repack_q4_k`, `repack_q5_k`, `repack_q8_0`), larger (Q5KR 1.57×: a
 * byte per value), so from the last group to the first once the whole
 * tensor is in; vectors not
 * stored as F32 are read into a small JS buffer first and converted (a few
 * KiB each).
 */
import { dequantize, layoutOf, typeName } from "../gguf/quant";
import { checkBlockScales } from "../gguf/scale-check";
import { TensorType, type TensorInfo } from "../gguf/types";
import { headOf, layerOf, type Layer, type NormParams, type TensorRole } from "../model/tensors";
import type { Kernels } from "./kernels";
import { isQuantized, type EngineLayout, type MatrixKind } from "./layout";

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
export type WasmNorm = NormParams<number>;
/** Vectors are pointers to f32. */
export type WasmLayer = Layer<WasmMatrix, number>;

export interface WasmWeights {
  /** Stored as in the file (rows are read one at a time with a dequantize kernel); absent in a shard. */
  embed?: WasmMatrix;
  /** By model layer; only the layers the engine holds are set. */
  layers: WasmLayer[];
  /** The final LayerNorm and the LM head (a head shard's slice of it); absent in a layer shard. */
  outputNorm?: WasmNorm;
  output?: WasmMatrix;
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
  /** By tensor name; tensors the engine does not hold are absent (skipped while reading). */
  placements: Map<string, Placement>;
}

/** The weights of `layout`, placed from `base` (the start of the layout's allocation) in the kernels' memory. */
export function planModel(layout: EngineLayout, base: number, kernels: Kernels): ModelPlan {
  const k = kernels.exports;
  const memory = kernels.memory;
  const view = (ptr: number, n: number) => () => new Uint8Array(memory.buffer, ptr, n);
  const placements = new Map<string, Placement>();
  const byRole = new Map<number | undefined, Map<TensorRole, WasmMatrix | number>>();
  let embed: WasmMatrix | undefined;
  let quantized = false;

  for (const p of layout.tensors.values()) {
    const { tensor: t, info, kind } = p;
    const ptr = base + p.offset;
    let held: WasmMatrix | number;
    if (t.kind === "vector") {
      placements.set(t.name, vectorPlacement(info, t.length, ptr, memory));
      held = ptr;
    } else {
      const placement: Placement = { info, dest: view(ptr, info.byteLength), finalize: () => {} };
      if (p.repack && (kind === "q4kr" || kind === "q5kr" || kind === "q8r")) {
        const repack = kind === "q4kr" ? k.repack_q4_k : kind === "q5kr" ? k.repack_q5_k : k.repack_q8_0;
        placement.finalize = () => repack(ptr, ptr, t.rows, t.cols);
      } else if (p.repack) {
        // A 4-row group's bytes are the same in the file and in Q4R/Q6R/Q2KR/Q3KR/Q41R/Q50R/Q51R, so a range of whole groups repacks alone.
        const [repack, blockBytes, blockSize] = ({
          q4r: [k.repack_q4_0, 18, 32], q41r: [k.repack_q4_1, 20, 32], q50r: [k.repack_q5_0, 22, 32], q51r: [k.repack_q5_1, 24, 32], q6r: [k.repack_q6_k, 210, 256], q2kr: [k.repack_q2_k, 84, 256], q3kr: [k.repack_q3_k, 110, 256],
        } as const)[kind as "q4r" | "q41r" | "q50r" | "q51r" | "q6r" | "q2kr" | "q3kr"];
        const groupBytes = 4 * (t.cols / blockSize) * blockBytes;
        placement.finalize = () => repack(ptr, ptr, t.rows, t.cols);
        placement.partBytes = groupBytes;
        placement.finalizePart = (start, end) => {
          const r0 = (start / groupBytes) * 4;
          const r1 = Math.min(t.rows, Math.ceil(end / groupBytes) * 4);
          repack(ptr + start, ptr + start, r1 - r0, t.cols);
        };
      }
      placements.set(t.name, scannedOnArrival(placement));
      held = { name: t.name, type: info.type, kind: kind!, ptr, rows: t.rows, cols: t.cols };
      if (t.role === "embed") {
        embed = held;
        continue;
      }
      quantized ||= isQuantized(kind);
    }
    let roles = byRole.get(t.layer);
    if (!roles) byRole.set(t.layer, (roles = new Map()));
    roles.set(t.role, held);
  }

  const zeros = base + layout.buffers.ZEROS.offset; // memory starts zeroed
  const layers: WasmLayer[] = [];
  for (let l = layout.layers[0]; l < layout.layers[1]; l++) layers[l] = layerOf<WasmMatrix, number>(byRole.get(l)!, zeros);
  const head = layout.logitsRows > 0 ? headOf<WasmMatrix, number>(byRole.get(undefined)!, zeros) : {};
  return { weights: { embed, layers, ...head, zeros, quantized }, placements };
}

/** A matrix's block scales are checked as its bytes arrive, before a repack moves them (src/gguf/scale-check.ts). */
function scannedOnArrival(p: Placement): Placement {
  const { finalize, finalizePart } = p;
  const blockBytes = layoutOf(p.info.type).blockBytes;
  return {
    ...p,
    finalize: () => {
      checkBlockScales(p.info, p.dest());
      finalize();
    },
    finalizePart: finalizePart && ((start, end) => {
      checkBlockScales(p.info, p.dest().subarray(start, end), start / blockBytes);
      finalizePart(start, end);
    }),
  };
}

/** A vector as f32 at ptr: F32 bytes land there directly; other types are converted on arrival. */
function vectorPlacement(info: TensorInfo, length: number, ptr: number, memory: WebAssembly.Memory): Placement {
  if (info.type === TensorType.F32) return { info, dest: () => new Uint8Array(memory.buffer, ptr, length * 4), finalize: () => {} };
  let tmp: Uint8Array | undefined;
  return {
    info,
    dest: () => (tmp = new Uint8Array(info.byteLength)),
    finalize: () => {
      try {
        dequantize(info.type, tmp!, length, new Float32Array(memory.buffer, ptr, length));
      } catch (e) {
        throw new Error(`tensor ${info.name} (${typeName(info.type)}): ${(e as Error).message}`);
      }
      tmp = undefined;
    },
  };
}
