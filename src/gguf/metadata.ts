/** Typed access to GGUF metadata with errors that name the key. */
import { ValueType, type MetaValue, type Metadata, type Scalar } from "./types";

export function metaNumber(meta: Metadata, key: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type === ValueType.UINT64 || v.type === ValueType.INT64) return Number(v.value);
  if (typeof v.value === "number") return v.value;
  throw new Error(`metadata ${key} should be a number, found ${ValueType[v.type]}`);
}

export function requireNumber(meta: Metadata, key: string): number {
  const v = metaNumber(meta, key);
  if (v === undefined) throw new Error(`metadata ${key} is missing`);
  return v;
}

export function metaString(meta: Metadata, key: string): string | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type !== ValueType.STRING) throw new Error(`metadata ${key} should be a string, found ${ValueType[v.type]}`);
  return v.value;
}

export function metaBool(meta: Metadata, key: string): boolean | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type !== ValueType.BOOL) throw new Error(`metadata ${key} should be a bool, found ${ValueType[v.type]}`);
  return v.value;
}

export function metaArray(meta: Metadata, key: string): Scalar[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type !== ValueType.ARRAY || v.itemType === ValueType.ARRAY) throw new Error(`metadata ${key} should be an array of scalars`);
  return v.value as Scalar[];
}

// Constructors, so writers read like the key/value lists they produce.
export const str = (value: string): MetaValue => ({ type: ValueType.STRING, value });
export const u32 = (value: number): MetaValue => ({ type: ValueType.UINT32, value });
export const f32 = (value: number): MetaValue => ({ type: ValueType.FLOAT32, value });
export const bool = (value: boolean): MetaValue => ({ type: ValueType.BOOL, value });
export const strArray = (value: string[]): MetaValue => ({ type: ValueType.ARRAY, itemType: ValueType.STRING, value });
export const i32Array = (value: number[]): MetaValue => ({ type: ValueType.ARRAY, itemType: ValueType.INT32, value });
export const f32Array = (value: number[]): MetaValue => ({ type: ValueType.ARRAY, itemType: ValueType.FLOAT32, value });

/** A short human form of a value for `inspect` (long arrays are summarised). */
export function formatValue(v: MetaValue, maxItems = 8): string {
  if (v.type === ValueType.ARRAY) {
    const items = v.value.slice(0, maxItems).map((x) => (typeof x === "object" && x !== null ? formatValue(x as MetaValue, 3) : JSON.stringify(typeof x === "bigint" ? x.toString() : x)));
    const more = v.value.length > maxItems ? `, … (${v.value.length} items)` : "";
    return `[${items.join(", ")}${more}] (${ValueType[v.itemType]}[${v.value.length}])`;
  }
  if (v.type === ValueType.STRING) return JSON.stringify(v.value.length > 200 ? `${v.value.slice(0, 200)}…` : v.value);
  return String(v.value);
}
