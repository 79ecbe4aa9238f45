/**
 * A scan of a quantized tensor's block scales as its bytes arrive: a NaN or
 * infinite f16 scale (`d`, `dmin`, `m`) poisons every value of its block and
 * then every logit, so a hostile or corrupt file is refused at load, naming
 * the tensor and the block, not discovered as garbage mid-generation. Also
 * refuses a tensor shorter than its shape says.
 */
import { layoutOf, tensorByteLength, typeName } from "./quant";
import { TensorType, type TensorInfo } from "./types";

/** Where each block keeps its f16 scales: [field name, byte offset within the block] (docs/model.md, Quant block layouts). */
const SCALES: Partial<Record<TensorType, [field: string, offset: number][]>> = {
  [TensorType.Q4_0]: [["d", 0]],
  [TensorType.Q4_1]: [["d", 0], ["m", 2]],
  [TensorType.Q5_0]: [["d", 0]],
  [TensorType.Q5_1]: [["d", 0], ["m", 2]],
  [TensorType.Q8_0]: [["d", 0]],
  [TensorType.Q2_K]: [["d", 80], ["dmin", 82]],
  [TensorType.Q3_K]: [["d", 108]],
  [TensorType.Q4_K]: [["d", 0], ["dmin", 2]],
  [TensorType.Q5_K]: [["d", 0], ["dmin", 2]],
  [TensorType.Q6_K]: [["d", 208]],
};

/**
 * Throws, naming the tensor, the block and the field, if `bytes` holds a
 * non-finite f16 scale. `bytes` is the whole tensor (then a short one is
 * refused too), or, given `firstBlock`, a run of whole blocks from that one.
 */
export function checkBlockScales(info: Pick<TensorInfo, "name" | "type" | "dims">, bytes: Uint8Array, firstBlock?: number): void {
  const what = `tensor ${info.name} (${typeName(info.type)})`;
  if (firstBlock === undefined) {
    const need = tensorByteLength(info.type, info.dims);
    if (bytes.length < need) {
      const { blockBytes } = layoutOf(info.type);
      const where = `, block ${Math.floor(bytes.length / blockBytes)} of ${need / blockBytes} incomplete`;
      throw new Error(`${what} is truncated: ${bytes.length} of ${need} bytes${where}`);
    }
  }
  const fields = SCALES[info.type];
  if (!fields) return;
  const { blockBytes } = layoutOf(info.type);
  const end = Math.floor(bytes.length / blockBytes) * blockBytes;
  // One tight pass per field (a load took seconds with the fields looped inside each block); the
  // first bad block wins, and within it the first field.
  let bad = -1;
  let badField = "";
  let o = 0;
  for (const [field, at] of fields) {
    const stop = bad < 0 ? end : bad * blockBytes;
    for (let hi = at + 1; hi < stop; hi += blockBytes) {
      // f16 exponent all ones (high byte 0x7c): infinity or NaN.
      if ((bytes[hi] & 0x7c) === 0x7c) {
        o = hi - 1;
        bad = (o - at) / blockBytes;
        badField = field;
        break;
      }
    }
  }
  if (bad < 0) return;
  const kind = bytes[o] | (bytes[o + 1] & 0x03) ? "a NaN" : "an infinite";
  throw new Error(`${what}: block ${(firstBlock ?? 0) + bad} has ${kind} scale ${badField} (f16 0x${(bytes[o] | (bytes[o + 1] << 8)).toString(16).padStart(4, "0")})`);
}
