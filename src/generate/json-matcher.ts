/**
 * The grammar run one byte at a time. A matcher state is a set of stacks (alternatives still alive,
 * as in an NFA); a stack is an immutable linked list of frames, so the mask search can branch from a
 * state without copying it. Every byte a frame accepts keeps the output completable: strings check
 * their length budget and pattern before the byte, numbers their range, objects their required keys.
 */
import { LIMITS, node, type GNode } from "./grammar";
import { numberComplete, numberPrefixOk } from "./json-number";
import { regexAccepts, regexNeed, regexRangeNeed, regexStep } from "./json-regex";

type StringNode = Extract<GNode, { k: "string" }>;
type NumberNode = Extract<GNode, { k: "number" }>;
type ObjectNode = Extract<GNode, { k: "object" }>;
type SeqNode = Extract<GNode, { k: "seq" }>;
type ListNode = Extract<GNode, { k: "list" }>;
type TextNode = Extract<GNode, { k: "text" }>;

/** Object/array phases: what the next non-whitespace byte may be. */
const enum Ph {
  /** After `{` or `[`: a key / item, or the close. */
  Open,
  /** Inside a key (a literal or string child is above). */
  Key,
  /** After a key: `:`. */
  Colon,
  /** After `:`: the value. */
  Value,
  /** A value child is above. */
  InValue,
  /** After a value: `,` or the close. */
  After,
  /** After `,`: a key / item (no close). */
  Next,
}

export type Frame =
  | { t: "lit"; b: Uint8Array; i: number }
  /**
   * c: characters so far. A partial UTF-8 character: `need` continuation bytes still due, `cp` the
   * code point bits so far, `len` its byte length. `esc`: 0, 1 after `\`, 2-5 inside `\u` (hex in cp).
   */
  | { t: "str"; n: StringNode; c: number; need: number; cp: number; len: number; esc: number; re: readonly number[] | undefined }
  | { t: "num"; n: NumberNode; s: string }
  /** j: the last declared property written (-1: none); m: the one being written. */
  | { t: "obj"; n: ObjectNode; ph: Ph; j: number; m: number; ws: number }
  | { t: "aobj"; ph: Ph; ws: number; depth: number }
  | { t: "arr"; item: GNode; min: number; max: number; c: number; ph: Ph; ws: number; depth: number; id: number }
  /** i: the item being matched; wait: it has not started (this frame is on top). */
  | { t: "seq"; n: SeqNode; i: number; wait: boolean }
  /** ph: Open = an item may start, Key = an item is above, After = the separator may start, Next = the separator is above. */
  | { t: "list"; n: ListNode; c: number; ph: Ph }
  /** k: bytes matched of the forbidden start; -1 once the text went another way. */
  | { t: "text"; n: TextNode; k: number };

export interface Stack {
  readonly f: Frame;
  readonly up: Stack | null;
}

/** null: the whole output is complete and nothing may follow. */
export type S = Stack | null;

const FREE_STRING = node({ k: "string", min: 0, max: Infinity }) as StringNode;
const FREE_NUMBER = node({ k: "number", integer: false, min: -Infinity, max: Infinity }) as NumberNode;
const ANY = node({ k: "any" });
const TRUE = new TextEncoder().encode("true");
const FALSE = new TextEncoder().encode("false");
const NULL = new TextEncoder().encode("null");

const Q = 0x22;
const BS = 0x5c;
const push = (f: Frame, up: S): Stack => ({ f, up });
const swap = (st: Stack, f: Frame): Stack => ({ f, up: st.up });

/** Whitespace: none, one space, or a newline and up to LIMITS.indent spaces or tabs. -1: not allowed. */
function ws(state: number, b: number): number {
  if (state === 0) return b === 0x20 ? 1 : b === 0x0a ? 2 : -1;
  if (state >= 2 && (b === 0x20 || b === 0x09) && state - 2 < LIMITS.indent) return state + 1;
  return -1;
}

/** Starts matching `n` with its first byte `b`, above `up`. */
export function enter(n: GNode, up: S, b: number, depth = 0): S[] {
  switch (n.k) {
    case "lit":
      if (b !== n.bytes[0]) return [];
      return n.bytes.length === 1 ? done(up) : [push({ t: "lit", b: n.bytes, i: 1 }, up)];
    case "alt": {
      const out: S[] = [];
      for (const x of n.items) for (const s of enter(x, up, b, depth)) out.push(s);
      return out;
    }
    case "string":
      return b === Q ? [push({ t: "str", n, c: 0, need: 0, cp: 0, len: 0, esc: 0, re: n.re?.start }, up)] : [];
    case "number": {
      const s = String.fromCharCode(b);
      return (b === 0x2d || (b >= 0x30 && b <= 0x39)) && numberPrefixOk(s, n) ? [push({ t: "num", n, s }, up)] : [];
    }
    case "object":
      return b === 0x7b ? [push({ t: "obj", n, ph: Ph.Open, j: -1, m: -1, ws: 0 }, up)] : [];
    case "anyObject":
      return b === 0x7b ? [push({ t: "aobj", ph: Ph.Open, ws: 0, depth: depth + 1 }, up)] : [];
    case "array":
      return b === 0x5b ? [push({ t: "arr", item: n.item, min: n.min, max: n.max, c: 0, ph: Ph.Open, ws: 0, depth: depth + 1, id: n.id }, up)] : [];
    case "any":
      if (b === 0x7b) return depth < LIMITS.anyDepth ? [push({ t: "aobj", ph: Ph.Open, ws: 0, depth: depth + 1 }, up)] : [];
      if (b === 0x5b) return depth < LIMITS.anyDepth ? [push({ t: "arr", item: ANY, min: 0, max: Infinity, c: 0, ph: Ph.Open, ws: 0, depth: depth + 1, id: ANY.id }, up)] : [];
      if (b === Q) return enter(FREE_STRING, up, b);
      if (b === 0x74) return [push({ t: "lit", b: TRUE, i: 1 }, up)];
      if (b === 0x66) return [push({ t: "lit", b: FALSE, i: 1 }, up)];
      if (b === 0x6e) return [push({ t: "lit", b: NULL, i: 1 }, up)];
      return enter(FREE_NUMBER, up, b);
    case "seq":
      return enter(n.items[0], push({ t: "seq", n, i: 0, wait: false }, up), b, depth);
    case "list":
      return enter(n.item, push({ t: "list", n, c: 0, ph: Ph.Key }, up), b, depth);
    case "text":
      return step(push({ t: "text", n, k: 0 }, up), b);
    case "never":
      return [];
  }
}

/** The frame above `up` finished: what `up` becomes (several when it may also finish itself). */
export function done(up: S): S[] {
  if (up === null) return [null];
  const f = up.f;
  switch (f.t) {
    case "seq":
      return f.i + 1 < f.n.items.length ? [swap(up, { ...f, i: f.i + 1, wait: true })] : done(up.up);
    case "list": {
      if (f.ph === Ph.Next) return [swap(up, { ...f, ph: Ph.Open })];
      const c = f.c + 1;
      const out: S[] = c < f.n.max ? [swap(up, { ...f, c, ph: Ph.After })] : [];
      if (c >= f.n.min) for (const s of done(up.up)) out.push(s);
      return out;
    }
    case "obj":
      return [swap(up, f.ph === Ph.Key ? { ...f, ph: Ph.Colon, ws: 0 } : { ...f, ph: Ph.After, j: f.m, ws: 0 })];
    case "aobj":
      return [swap(up, { ...f, ph: f.ph === Ph.Key ? Ph.Colon : Ph.After, ws: 0 })];
    case "arr":
      return [swap(up, { ...f, ph: Ph.After, c: f.c + 1, ws: 0 })];
    default:
      throw new Error(`json-matcher: a ${f.t} frame cannot hold a child`);
  }
}

/** Whether a declared property after index j is still required (then the object cannot close). */
function requiredAfter(n: ObjectNode, j: number): boolean {
  for (let i = j + 1; i < n.props.length; i++) if (n.props[i].required) return true;
  return false;
}

/** The stacks after byte `b`; empty when `b` cannot come next. */
export function step(st: Stack, b: number): S[] {
  const f = st.f;
  switch (f.t) {
    case "lit":
      if (b !== f.b[f.i]) return [];
      return f.i + 1 === f.b.length ? done(st.up) : [swap(st, { ...f, i: f.i + 1 })];
    case "str":
      return stepString(st, f, b);
    case "num": {
      const s = f.s + String.fromCharCode(b);
      if (numberPrefixOk(s, f.n)) return [swap(st, { ...f, s })];
      if (!numberComplete(f.s, f.n)) return [];
      // The byte ends the number: the parent takes it.
      const out: S[] = [];
      for (const p of done(st.up)) if (p) for (const x of step(p, b)) out.push(x);
      return out;
    }
    case "obj":
      return stepObject(st, f, b);
    case "aobj": {
      const w = f.ph === Ph.Open || f.ph === Ph.Next || f.ph === Ph.Colon || f.ph === Ph.Value || f.ph === Ph.After ? ws(f.ws, b) : -1;
      if (w >= 0) return [swap(st, { ...f, ws: w })];
      switch (f.ph) {
        case Ph.Open:
        case Ph.Next:
          if (b === 0x7d && f.ph === Ph.Open) return done(st.up);
          return b === Q ? enter(FREE_STRING, swap(st, { ...f, ph: Ph.Key }), b) : [];
        case Ph.Colon:
          return b === 0x3a ? [swap(st, { ...f, ph: Ph.Value, ws: 0 })] : [];
        case Ph.Value:
          return enter(ANY, swap(st, { ...f, ph: Ph.InValue }), b, f.depth);
        case Ph.After:
          if (b === 0x2c) return [swap(st, { ...f, ph: Ph.Next, ws: 0 })];
          return b === 0x7d ? done(st.up) : [];
        default:
          return [];
      }
    }
    case "arr": {
      const w = f.ph === Ph.Open || f.ph === Ph.Next || f.ph === Ph.After ? ws(f.ws, b) : -1;
      if (w >= 0) return [swap(st, { ...f, ws: w })];
      if (f.ph === Ph.After) {
        if (b === 0x2c && f.c < f.max) return [swap(st, { ...f, ph: Ph.Next, ws: 0 })];
        return b === 0x5d && f.c >= f.min ? done(st.up) : [];
      }
      if (f.ph === Ph.Open && b === 0x5d) return f.min === 0 ? done(st.up) : [];
      if ((f.ph === Ph.Open && f.max > 0) || f.ph === Ph.Next) return enter(f.item, swap(st, { ...f, ph: Ph.InValue }), b, f.depth);
      return [];
    }
    case "seq":
      return f.wait ? enter(f.n.items[f.i], swap(st, { ...f, wait: false }), b) : [];
    case "list":
      if (f.ph === Ph.Open) return enter(f.n.item, swap(st, { ...f, ph: Ph.Key }), b);
      if (f.ph !== Ph.After || b !== f.n.sep[0]) return [];
      return f.n.sep.length === 1 ? [swap(st, { ...f, ph: Ph.Open })] : [push({ t: "lit", b: f.n.sep, i: 1 }, swap(st, { ...f, ph: Ph.Next }))];
    case "text": {
      if (f.k < 0) return [st];
      const p = f.n.notPrefix;
      if (b !== p[f.k]) return [swap(st, { ...f, k: -1 })];
      return f.k + 1 === p.length ? [] : [swap(st, { ...f, k: f.k + 1 })];
    }
  }
}

function stepObject(st: Stack, f: Extract<Frame, { t: "obj" }>, b: number): S[] {
  const props = f.n.props;
  if (f.ph !== Ph.Key && f.ph !== Ph.InValue) {
    const w = ws(f.ws, b);
    if (w >= 0) return [swap(st, { ...f, ws: w })];
  }
  switch (f.ph) {
    case Ph.Open:
    case Ph.Next: {
      if (b === 0x7d) return f.ph === Ph.Open && !requiredAfter(f.n, f.j) ? done(st.up) : [];
      if (b !== Q) return [];
      // Any later property may come next, up to and including the first required one.
      const out: S[] = [];
      for (let m = f.j + 1; m < props.length; m++) {
        out.push(push({ t: "lit", b: props[m].keyLit, i: 1 }, swap(st, { ...f, ph: Ph.Key, m })));
        if (props[m].required) break;
      }
      return out;
    }
    case Ph.Colon:
      return b === 0x3a ? [swap(st, { ...f, ph: Ph.Value, ws: 0 })] : [];
    case Ph.Value:
      return enter(props[f.m].node, swap(st, { ...f, ph: Ph.InValue }), b);
    case Ph.After:
      if (b === 0x2c) return f.j + 1 < props.length ? [swap(st, { ...f, ph: Ph.Next, ws: 0 })] : [];
      return b === 0x7d && !requiredAfter(f.n, f.j) ? done(st.up) : [];
    default:
      return [];
  }
}

const SIMPLE_ESCAPES: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9 };
const isHex = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** A whole character `cp` joins the string: the length budget and the pattern must still be satisfiable. */
function addChar(st: Stack, f: Extract<Frame, { t: "str" }>, cp: number): S[] {
  const c = f.c + 1;
  if (c > f.n.max) return [];
  let re = f.re;
  if (f.n.re && re) {
    re = regexStep(f.n.re, re, cp);
    if (!re.length || regexNeed(f.n.re, re) > f.n.max - c) return [];
  }
  return [swap(st, { ...f, c, need: 0, cp: 0, len: 0, esc: 0, re })];
}

/** Whether a character in lo..hi may still join the string (checked at each byte of a multi-byte character). */
function rangeOk(f: Extract<Frame, { t: "str" }>, lo: number, hi: number): boolean {
  if (f.c + 1 > f.n.max) return false;
  if (!f.n.re || !f.re) return true;
  const need = regexRangeNeed(f.n.re, f.re, lo, hi);
  return need !== Infinity && need <= f.n.max - f.c;
}

/** Lowest and highest code point of each UTF-8 length (overlong forms excluded). */
const CP_LO = [0, 0, 0x80, 0x800, 0x10000];
const CP_HI = [0, 0x7f, 0x7ff, 0xffff, 0x10ffff];

/** The code points a partial character can still become: bits `cp` known, `need` bytes to come; undefined if none. */
function cpRange(cp: number, need: number, len: number): [number, number] | undefined {
  let lo = Math.max(cp * 2 ** (6 * need), CP_LO[len]);
  let hi = Math.min((cp + 1) * 2 ** (6 * need) - 1, CP_HI[len]);
  // Surrogates are not characters.
  if (lo >= 0xd800 && lo <= 0xdfff) lo = 0xe000;
  if (hi >= 0xd800 && hi <= 0xdfff) hi = 0xd7ff;
  return lo <= hi ? [lo, hi] : undefined;
}

function stepString(st: Stack, f: Extract<Frame, { t: "str" }>, b: number): S[] {
  if (f.need > 0) {
    if (b < 0x80 || b > 0xbf) return [];
    const cp = (f.cp << 6) | (b & 0x3f);
    const r = cpRange(cp, f.need - 1, f.len);
    if (!r) return [];
    if (f.need === 1) return addChar(st, f, cp);
    return rangeOk(f, r[0], r[1]) ? [swap(st, { ...f, need: f.need - 1, cp })] : [];
  }
  if (f.esc === 1) {
    if (b === 0x75) return f.n.re ? [] : [swap(st, { ...f, esc: 2, cp: 0 })];
    const cp = SIMPLE_ESCAPES[b];
    return cp === undefined ? [] : addChar(st, f, cp);
  }
  if (f.esc >= 2) {
    if (!isHex(b)) return [];
    const v = (f.cp << 4) | parseInt(String.fromCharCode(b), 16);
    // No surrogate halves: \uD800-\uDFFF would need a pair, which this subset does not write.
    if (f.esc === 3 && v >= 0xd8 && v <= 0xdf) return [];
    if (f.esc === 5) return addChar(st, f, v);
    return [swap(st, { ...f, esc: f.esc + 1, cp: v })];
  }
  if (b === Q) {
    if (f.c < f.n.min || (f.n.re && f.re && !regexAccepts(f.n.re, f.re))) return [];
    return done(st.up);
  }
  if (b === BS) {
    if (f.c + 1 > f.n.max) return [];
    if (f.n.re && f.re && !Object.values(SIMPLE_ESCAPES).some((cp) => rangeOk(f, cp, cp))) return [];
    return [swap(st, { ...f, esc: 1 })];
  }
  if (b < 0x20) return [];
  if (b < 0x80) return addChar(st, f, b);
  const len = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
  if (!len) return [];
  const cp = b & (0xff >> (len + 1));
  const r = cpRange(cp, len - 1, len);
  return r && rangeOk(f, r[0], r[1]) ? [swap(st, { ...f, need: len - 1, cp, len })] : [];
}

/** Whether the output may end here (an end-of-text token is allowed). */
export function canEnd(st: S): boolean {
  if (st === null) return true;
  const f = st.f;
  if (f.t === "num") return numberComplete(f.s, f.n) && done(st.up).some(canEnd);
  if (f.t === "text") return done(st.up).some(canEnd);
  return false;
}

/** A key that identifies what a stack can still accept (states with equal keys get equal masks). */
export function stackKey(st: S): string {
  let k = "";
  for (let s = st; s; s = s.up) k += frameKey(s.f) + "|";
  return k;
}

function frameKey(f: Frame): string {
  switch (f.t) {
    case "lit":
      return `l${f.i}:${Array.from(f.b).join(".")}`;
    case "str": {
      // Past minLength with no maxLength, the count changes nothing.
      const c = f.n.max === Infinity && !f.n.re ? Math.min(f.c, f.n.min) : f.c;
      return `s${f.n.id},${c},${f.need},${f.cp},${f.len},${f.esc},${f.re?.join(".") ?? ""}`;
    }
    case "num":
      return `n${f.n.id},${f.s}`;
    case "obj":
      return `o${f.n.id},${f.ph},${f.j},${f.m},${f.ws}`;
    case "aobj":
      return `a${f.ph},${f.ws},${f.depth}`;
    case "arr":
      return `r${f.id},${f.c},${f.ph},${f.ws},${f.depth}`;
    case "seq":
      return `q${f.n.id},${f.i},${f.wait ? 1 : 0}`;
    case "list":
      return `L${f.n.id},${f.c},${f.ph}`;
    case "text":
      return `t${f.n.id},${f.k}`;
  }
}

/** The stacks after all of `bytes`, duplicates removed. */
export function advance(stacks: readonly S[], bytes: Uint8Array): S[] {
  let cur = stacks;
  for (const b of bytes) {
    const next: S[] = [];
    for (const s of cur) if (s) for (const x of step(s, b)) next.push(x);
    cur = next.length > 1 ? dedupe(next) : next;
    if (!cur.length) break;
  }
  return cur as S[];
}

export function dedupe(stacks: readonly S[]): S[] {
  const seen = new Set<string>();
  const out: S[] = [];
  for (const s of stacks) {
    const k = stackKey(s);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(s);
    }
  }
  return out;
}

const starts = new WeakMap<GNode, S[]>();

/** The stacks before the first byte: a start frame that hands the first byte to the grammar. */
export function initial(g: GNode): S[] {
  let s = starts.get(g);
  if (!s) starts.set(g, (s = [push({ t: "seq", n: node({ k: "seq", items: [g] }) as SeqNode, i: 0, wait: true }, null)]));
  return s;
}
