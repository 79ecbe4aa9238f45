/**
 * The `pattern` keyword: a safe subset of ECMAScript regular expressions compiled to an NFA over
 * code points (Thompson's construction), run as a set of states. Safe means no backreferences and
 * no lookaround, so a match never backtracks and every state knows how many characters it needs to
 * reach a match (`need`), which is what lets a string with `maxLength` never paint itself into a
 * corner. docs/structured-output.md lists the subset.
 */

/** Sorted, disjoint, inclusive code point ranges: [lo0, hi0, lo1, hi1, ...]. */
export type CharSet = number[];

interface State {
  eps: number[];
  edges: { set: CharSet; to: number }[];
}

export interface Regex {
  states: State[];
  start: number[];
  accept: number;
  /** Fewest characters from each state to a match (Infinity: none). */
  need: number[];
}

export class RegexError extends Error {}

const MAX_CP = 0x10ffff;
const MAX_STATES = 5000;
const MAX_REPEAT = 1000;

function union(a: CharSet, b: CharSet): CharSet {
  const r = [...a, ...b];
  const pairs: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i], r[i + 1]]);
  pairs.sort((x, y) => x[0] - y[0]);
  const out: CharSet = [];
  for (const [lo, hi] of pairs) {
    if (out.length && lo <= out[out.length - 1] + 1) out[out.length - 1] = Math.max(out[out.length - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}

function negate(a: CharSet): CharSet {
  const out: CharSet = [];
  let at = 0;
  for (let i = 0; i < a.length; i += 2) {
    if (a[i] > at) out.push(at, a[i] - 1);
    at = a[i + 1] + 1;
  }
  if (at <= MAX_CP) out.push(at, MAX_CP);
  return out;
}

export function inSet(set: CharSet, cp: number): boolean {
  for (let i = 0; i < set.length; i += 2) if (cp >= set[i] && cp <= set[i + 1]) return true;
  return false;
}

const DIGIT: CharSet = [0x30, 0x39];
const WORD: CharSet = union(union([0x30, 0x39], [0x41, 0x5a]), union([0x5f, 0x5f], [0x61, 0x7a]));
// ECMAScript's \s: WhiteSpace and LineTerminator.
const SPACE: CharSet = [0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];
const DOT: CharSet = negate([0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029]);
const ANY: CharSet = [0, MAX_CP];

/** A parsed expression. */
type Ast = { t: "set"; set: CharSet } | { t: "cat"; items: Ast[] } | { t: "alt"; items: Ast[] } | { t: "rep"; item: Ast; min: number; max: number };

class Parser {
  i = 0;
  constructor(readonly src: string) {}

  fail(why: string): never {
    throw new RegexError(`${why} at position ${this.i} of /${this.src}/`);
  }

  peek(): string | undefined {
    return this.src[this.i];
  }

  alt(): Ast {
    const items = [this.cat()];
    while (this.peek() === "|") {
      this.i++;
      items.push(this.cat());
    }
    return items.length === 1 ? items[0] : { t: "alt", items };
  }

  cat(): Ast {
    const items: Ast[] = [];
    for (let c = this.peek(); c !== undefined && c !== "|" && c !== ")"; c = this.peek()) {
      if (c === "^" || c === "$") this.fail(`the anchor ${c} is only supported at the very start (^) or end ($)`);
      items.push(this.quantified(this.atom()));
    }
    return { t: "cat", items };
  }

  quantified(a: Ast): Ast {
    const c = this.peek();
    let min: number, max: number;
    if (c === "*") [min, max] = [0, Infinity];
    else if (c === "+") [min, max] = [1, Infinity];
    else if (c === "?") [min, max] = [0, 1];
    else if (c === "{" && /^\{\d+(,\d*)?\}/.test(this.src.slice(this.i))) {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i))!;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
      if (max < min) this.fail("a {min,max} quantifier with max < min");
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`a repeat count over ${MAX_REPEAT}`);
      this.i += m[0].length - 1;
    } else return a;
    this.i++;
    if (this.peek() === "?") this.i++; // lazy: the same language
    if ("*+?{".includes(this.peek() ?? "") && this.peek() !== undefined) this.fail("a quantifier after a quantifier");
    return { t: "rep", item: a, min, max };
  }

  atom(): Ast {
    const c = this.src[this.i++];
    if (c === "(") {
      if (this.src.startsWith("?:", this.i)) this.i += 2;
      else if (this.peek() === "?") {
        const named = /^\?<([A-Za-z_$][\w$]*)>/.exec(this.src.slice(this.i));
        if (!named) this.fail("lookahead, lookbehind and other (? groups are not supported");
        this.i += named[0].length;
      }
      const inner = this.alt();
      if (this.src[this.i++] !== ")") this.fail("a missing )");
      return inner;
    }
    if (c === "[") return { t: "set", set: this.klass() };
    if (c === ".") return { t: "set", set: DOT };
    if (c === "\\") return { t: "set", set: this.escape(false) };
    if (c === "*" || c === "+" || c === "?" || c === ")" || c === "{") this.fail(`a stray ${c}`);
    const cp = this.src.codePointAt(this.i - 1)!;
    if (cp > 0xffff) this.i++;
    return { t: "set", set: [cp, cp] };
  }

  escape(inClass: boolean): CharSet {
    const c = this.src[this.i++];
    if (c === undefined) this.fail("a trailing backslash");
    const single = (cp: number): CharSet => [cp, cp];
    switch (c) {
      case "d": return DIGIT;
      case "D": return negate(DIGIT);
      case "w": return WORD;
      case "W": return negate(WORD);
      case "s": return SPACE;
      case "S": return negate(SPACE);
      case "t": return single(9);
      case "n": return single(10);
      case "v": return single(11);
      case "f": return single(12);
      case "r": return single(13);
      case "0": return single(0);
      case "b":
        if (inClass) return single(8);
        return this.fail("word boundaries (\\b) are not supported");
      case "x":
      case "u": {
        const n = c === "x" ? 2 : 4;
        const hex = this.src.slice(this.i, this.i + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) this.fail(`a malformed \\${c} escape`);
        this.i += n;
        return single(parseInt(hex, 16));
      }
    }
    if (/[1-9]/.test(c)) this.fail("backreferences are not supported");
    if (/[A-Za-z]/.test(c)) this.fail(`the escape \\${c} is not supported`);
    return single(c.codePointAt(0)!);
  }

  klass(): CharSet {
    let negated = false;
    if (this.peek() === "^") {
      negated = true;
      this.i++;
    }
    let set: CharSet = [];
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail("a missing ]");
      if (c === "]" && !first) break;
      first = false;
      const lo = this.classAtom();
      if (this.peek() === "-" && this.src[this.i + 1] !== "]" && this.src[this.i + 1] !== undefined) {
        this.i++;
        const hi = this.classAtom();
        if (lo.length !== 2 || hi.length !== 2 || lo[0] !== lo[1] || hi[0] !== hi[1]) this.fail("a range with a class escape at one end");
        if (hi[0] < lo[0]) this.fail("a range out of order");
        set = union(set, [lo[0], hi[0]]);
      } else set = union(set, lo);
    }
    this.i++;
    return negated ? negate(set) : set;
  }

  classAtom(): CharSet {
    const c = this.src[this.i++];
    if (c === "\\") return this.escape(true);
    const cp = this.src.codePointAt(this.i - 1)!;
    if (cp > 0xffff) this.i++;
    return [cp, cp];
  }
}

class Builder {
  states: State[] = [];

  add(): number {
    if (this.states.length >= MAX_STATES) throw new RegexError(`the pattern needs more than ${MAX_STATES} states`);
    this.states.push({ eps: [], edges: [] });
    return this.states.length - 1;
  }

  /** Builds `a` between a fresh entry and exit state; returns them. */
  build(a: Ast): [number, number] {
    const s = this.add();
    const e = this.add();
    this.into(a, s, e);
    return [s, e];
  }

  into(a: Ast, s: number, e: number): void {
    switch (a.t) {
      case "set":
        this.states[s].edges.push({ set: a.set, to: e });
        return;
      case "cat": {
        let at = s;
        for (const item of a.items) {
          const next = this.add();
          this.into(item, at, next);
          at = next;
        }
        this.states[at].eps.push(e);
        return;
      }
      case "alt":
        for (const item of a.items) this.into(item, s, e);
        return;
      case "rep": {
        let at = s;
        for (let k = 0; k < a.min; k++) {
          const next = this.add();
          this.into(a.item, at, next);
          at = next;
        }
        if (a.max === Infinity) {
          const loop = this.add();
          this.states[at].eps.push(loop);
          this.into(a.item, loop, loop);
          this.states[loop].eps.push(e);
          return;
        }
        for (let k = a.min; k < a.max; k++) {
          this.states[at].eps.push(e);
          const next = this.add();
          this.into(a.item, at, next);
          at = next;
        }
        this.states[at].eps.push(e);
      }
    }
  }
}

/** Compiles a JSON Schema `pattern`: unanchored ends match anything, as the keyword means. */
export function compileRegex(src: string): Regex {
  let body = src;
  const start = body.startsWith("^");
  if (start) body = body.slice(1);
  const end = body.endsWith("$") && !body.endsWith("\\$");
  if (end) body = body.slice(0, -1);
  const p = new Parser(body);
  let ast = p.alt();
  if (p.i < body.length) p.fail("an unmatched )");
  const anything: Ast = { t: "rep", item: { t: "set", set: ANY }, min: 0, max: Infinity };
  ast = { t: "cat", items: [...(start ? [] : [anything]), ast, ...(end ? [] : [anything])] };
  const b = new Builder();
  const [s, e] = b.build(ast);
  const need = distances(b.states, e);
  const startSet = closure(b.states, need, [s]);
  if (!startSet.length) throw new RegexError(`/${src}/ matches nothing`);
  return { states: b.states, start: startSet, accept: e, need };
}

/** Backward breadth-first search from the accept state: characters still needed from each state. */
function distances(states: State[], accept: number): number[] {
  const need = new Array<number>(states.length).fill(Infinity);
  need[accept] = 0;
  // Relax until stable: epsilon edges cost 0, character edges 1 (a tiny graph; a few passes).
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 0; i < states.length; i++) {
      let best = need[i];
      for (const j of states[i].eps) best = Math.min(best, need[j]);
      for (const ed of states[i].edges) if (ed.set.length) best = Math.min(best, need[ed.to] + 1);
      if (best < need[i]) {
        need[i] = best;
        changed = true;
      }
    }
  }
  return need;
}

/** Epsilon closure, without states that cannot reach a match; sorted. */
function closure(states: State[], need: number[], from: number[]): number[] {
  const seen = new Set<number>();
  const todo = [...from];
  while (todo.length) {
    const i = todo.pop()!;
    if (seen.has(i) || need[i] === Infinity) continue;
    seen.add(i);
    todo.push(...states[i].eps);
  }
  return [...seen].sort((a, b) => a - b);
}

/** The states after one more character; empty when the character cannot come next. */
export function regexStep(re: Regex, set: readonly number[], cp: number): number[] {
  const next: number[] = [];
  for (const i of set) for (const ed of re.states[i].edges) if (inSet(ed.set, cp)) next.push(ed.to);
  return next.length ? closure(re.states, re.need, next) : next;
}

/**
 * Fewest characters to a match when the next character is one of lo..hi (the code points a partial
 * UTF-8 sequence may still become), counting that character; Infinity when none of them can come next.
 */
export function regexRangeNeed(re: Regex, set: readonly number[], lo: number, hi: number): number {
  let best = Infinity;
  for (const i of set) {
    for (const ed of re.states[i].edges) {
      const s = ed.set;
      for (let k = 0; k < s.length; k += 2) if (s[k] <= hi && s[k + 1] >= lo) best = Math.min(best, re.need[ed.to] + 1);
    }
  }
  return best;
}

export function regexNeed(re: Regex, set: readonly number[]): number {
  let best = Infinity;
  for (const i of set) best = Math.min(best, re.need[i]);
  return best;
}

export const regexAccepts = (re: Regex, set: readonly number[]): boolean => set.includes(re.accept);
