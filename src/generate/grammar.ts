/**
 * The grammar the constraint engine enforces: a tree of byte-level nodes that JSON Schemas,
 * JSON mode and the tool-call format compile to. Every node has an id, which state keys of the
 * mask cache use, so two grammars never share cached masks by accident.
 */
import type { Regex } from "./json-regex";

export interface Prop {
  key: string;
  /** `"key"` as UTF-8 bytes: what the output holds. */
  keyLit: Uint8Array;
  node: GNode;
  required: boolean;
}

export type GNode = { id: number } & (
  | { k: "lit"; bytes: Uint8Array }
  | { k: "alt"; items: GNode[] }
  /** A JSON string; min/max count code points; `re` constrains the decoded characters. */
  | { k: "string"; min: number; max: number; re?: Regex }
  | { k: "number"; integer: boolean; min: number; max: number }
  /** Declared properties only, in declared order; optional ones may be left out. */
  | { k: "object"; props: Prop[] }
  /** Any JSON value (JSON mode); objects have free keys. */
  | { k: "any" }
  /** Any JSON object. */
  | { k: "anyObject" }
  | { k: "array"; item: GNode; min: number; max: number }
  /** The items one after another, nothing between them. */
  | { k: "seq"; items: GNode[] }
  /** min..max items separated by `sep` bytes. */
  | { k: "list"; item: GNode; sep: Uint8Array; min: number; max: number }
  /** Free text that does not start with `notPrefix`. */
  | { k: "text"; notPrefix: Uint8Array }
  | { k: "never" }
);

type Body<K extends GNode["k"]> = Omit<Extract<GNode, { k: K }>, "id">;

let nextId = 1;

export function node<K extends GNode["k"]>(body: Body<K> & { k: K }): GNode {
  return { id: nextId++, ...body } as GNode;
}

const utf8 = new TextEncoder();
export const bytesOf = (s: string): Uint8Array => utf8.encode(s);

export const lit = (s: string): GNode => node({ k: "lit", bytes: bytesOf(s) });
export const NEVER: GNode = node({ k: "never" });

/** Alternatives without the impossible ones; one alternative is itself. */
export function alt(items: GNode[]): GNode {
  const live = items.filter((n) => n.k !== "never");
  if (live.length === 0) return NEVER;
  return live.length === 1 ? live[0] : node({ k: "alt", items: live });
}

export function seq(items: GNode[]): GNode {
  if (items.some((n) => n.k === "never")) return NEVER;
  return node({ k: "seq", items });
}

/** Bounds on generated JSON, so a random or looping model still ends (docs/structured-output.md). */
export const LIMITS = {
  /** Whitespace between tokens: nothing, one space, or a newline and up to this many spaces or tabs. */
  indent: 16,
  /** Digits before the point (an integer stays a safe integer), after it, and of an exponent. */
  intDigits: 15,
  fracDigits: 15,
  expDigits: 2,
  /** Nesting of free values in JSON mode. */
  anyDepth: 16,
  /** How many times a `$ref` may be expanded inside itself. */
  refDepth: 3,
  /** Grammar nodes one schema may compile to. */
  nodes: 20_000,
};
