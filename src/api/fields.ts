/**
 * A small strict reader over a parsed JSON object: each getter checks one field's type and range
 * and remembers that the field is known, so `finish()` can reject whatever is left as unknown.
 * `null` counts as absent, because OpenAI SDKs send explicit nulls for unset options.
 */
import { invalid } from "./errors";

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

interface Range {
  min?: number;
  max?: number;
  /** min is excluded (e.g. top_p > 0). */
  minExclusive?: boolean;
}

export class Fields {
  private readonly seen = new Set<string>();

  constructor(
    private readonly obj: JsonObject,
    /** Prefix for error `param`s of nested objects, e.g. "messages[0]." */
    private readonly prefix = "",
  ) {}

  private name(key: string): string {
    return this.prefix + key;
  }

  /** The raw value, or undefined when absent or null. */
  raw(key: string): unknown {
    this.seen.add(key);
    const v = this.obj[key];
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.raw(key) !== undefined;
  }

  string(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined || typeof v === "string") return v;
    throw invalid(this.name(key), `${this.name(key)} must be a string, got ${typeName(v)}`, "invalid_type");
  }

  boolean(key: string): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined || typeof v === "boolean") return v;
    throw invalid(this.name(key), `${this.name(key)} must be a boolean, got ${typeName(v)}`, "invalid_type");
  }

  number(key: string, range: Range = {}): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(this.name(key), `${this.name(key)} must be a number, got ${typeName(v)}`, "invalid_type");
    this.checkRange(key, v, range);
    return v;
  }

  integer(key: string, range: Range = {}): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw invalid(this.name(key), `${this.name(key)} must be an integer, got ${typeof v === "number" ? v : typeName(v)}`, "invalid_type");
    this.checkRange(key, v, range);
    return v;
  }

  /** A field this server knows but does not implement: 400 unless `harmless(value)` (e.g. null, {}, 1). */
  unsupported(key: string, harmless: (v: unknown) => boolean, why: string): void {
    const v = this.raw(key);
    if (v !== undefined && !harmless(v)) throw invalid(this.name(key), `${this.name(key)} is not supported by this server: ${why}`, "unsupported_parameter");
  }

  /** Rejects the first field no getter asked about. */
  finish(): void {
    for (const key of Object.keys(this.obj)) {
      if (!this.seen.has(key)) throw invalid(this.name(key), `unrecognized request argument: ${this.name(key)}`, "unknown_parameter");
    }
  }

  private checkRange(key: string, v: number, r: Range): void {
    const low = r.min !== undefined && (r.minExclusive ? v <= r.min : v < r.min);
    const high = r.max !== undefined && v > r.max;
    if (!low && !high) return;
    const lo = r.min === undefined ? "" : r.minExclusive ? `> ${r.min}` : `≥ ${r.min}`;
    const hi = r.max === undefined ? "" : `≤ ${r.max}`;
    throw invalid(this.name(key), `${this.name(key)} must be ${[lo, hi].filter(Boolean).join(" and ")}, got ${v}`);
  }
}
