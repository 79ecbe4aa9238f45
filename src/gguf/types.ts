/** GGUF v3 value and tensor types (docs/model.md, Container). */

export enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type Scalar = number | bigint | boolean | string;

/** One metadata value. 64-bit integers are bigint; arrays keep their element type. */
export type MetaValue =
  | { type: Exclude<ValueType, ValueType.ARRAY | ValueType.UINT64 | ValueType.INT64 | ValueType.BOOL | ValueType.STRING>; value: number }
  | { type: ValueType.UINT64 | ValueType.INT64; value: bigint }
  | { type: ValueType.BOOL; value: boolean }
  | { type: ValueType.STRING; value: string }
  | { type: ValueType.ARRAY; itemType: Exclude<ValueType, ValueType.ARRAY>; value: Scalar[] }
  | { type: ValueType.ARRAY; itemType: ValueType.ARRAY; value: MetaValue[] };

export type Metadata = Map<string, MetaValue>;

export enum TensorType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

export interface TensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  type: TensorType;
  /** Offset relative to the start of the data section. */
  offset: number;
  /** Size in bytes of the tensor's data (without padding). */
  byteLength: number;
  /** Number of elements. */
  count: number;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_VERSION = 3;
export const DEFAULT_ALIGNMENT = 32;
