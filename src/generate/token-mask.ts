/**
 * Which tokens may come next, from a matcher state. The vocabulary is a byte trie; a depth-first
 * walk advances the state along each edge and drops a subtree at the first byte it rejects, so the
 * work follows the tokens that fit, not the vocabulary. Two shortcuts keep the big states cheap:
 * inside a plain string every token made only of string characters is allowed (a bitset per
 * remaining-length budget, built once), so only the ~2% of tokens that hold `"` or `\` are walked;
 * and free text allows whole subtrees at once. Masks are cached by the state's key.
 */
import type { Tokenizer } from "../tokenizer/index";
import { canEnd, dedupe, stackKey, step, type S } from "./json-matcher";

interface Trie {
  /** Per node: first child, next sibling, edge byte, token id ending here (-1: none). */
  first: Int32Array;
  next: Int32Array;
  byte: Uint8Array;
  tok: Int32Array;
  /** Per node: its subtree's tokens are order[lo..hi). */
  lo: Int32Array;
  hi: Int32Array;
  order: Int32Array;
}

/** A set of token ids as bits. */
export type Bits = Uint32Array;

/** `key`: the bytes as a binary string (one char per byte), whose code unit order is byte order. */
function buildTrie(tokens: { id: number; bytes: Uint8Array; key: string }[]): Trie {
  tokens.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let cap = 1;
  for (const t of tokens) cap += t.bytes.length;
  const first = new Int32Array(cap).fill(-1);
  const next = new Int32Array(cap).fill(-1);
  const byte = new Uint8Array(cap);
  const tok = new Int32Array(cap).fill(-1);
  const lo = new Int32Array(cap);
  const hi = new Int32Array(cap);
  const order = new Int32Array(tokens.length);
  let nodes = 1;
  // Sorted input: each token shares a prefix with the previous one; the path below it is new.
  const path: number[] = [0];
  const lastChild: number[] = [-1];
  let prev: Uint8Array = new Uint8Array(0);
  tokens.forEach((t, k) => {
    let common = 0;
    while (common < prev.length && common < t.bytes.length && prev[common] === t.bytes[common]) common++;
    for (let d = path.length - 1; d > common; d--) hi[path[d]] = k;
    path.length = common + 1;
    lastChild.length = common + 1;
    for (let d = common; d < t.bytes.length; d++) {
      const n = nodes++;
      byte[n] = t.bytes[d];
      lo[n] = k;
      const parent = path[d];
      if (lastChild[d] === undefined || lastChild[d] < 0 || first[parent] < 0) first[parent] = n;
      else next[lastChild[d]] = n;
      lastChild[d] = n;
      path.push(n);
      lastChild.push(-1);
    }
    const end = path[t.bytes.length];
    // Two ids with the same bytes (rare in real vocabularies): the trie keeps the first.
    if (tok[end] < 0) tok[end] = t.id;
    order[k] = t.id;
    prev = t.bytes;
  });
  for (let d = path.length - 1; d > 0; d--) hi[path[d]] = tokens.length;
  lo[0] = 0;
  hi[0] = tokens.length;
  return { first, next, byte, tok, lo, hi, order };
}

/** String content: printable ASCII but `"` and `\`, and UTF-8 bytes. Leading continuation bytes are not (mid-character). */
function stringChars(b: Uint8Array): number {
  if (b.length === 0 || (b[0] >= 0x80 && b[0] <= 0xbf)) return -1;
  let chars = 0;
  let need = 0;
  for (const x of b) {
    if (need > 0) {
      if (x < 0x80 || x > 0xbf) return -1;
      need--;
      continue;
    }
    if (x === 0x22 || x === 0x5c || x < 0x20) return -1;
    if (x < 0x80) chars++;
    else if (x >= 0xc2 && x <= 0xdf) (need = 1), chars++;
    else if (x >= 0xe0 && x <= 0xef) (need = 2), chars++;
    else if (x >= 0xf0 && x <= 0xf4) (need = 3), chars++;
    else return -1;
  }
  return chars;
}

/** What the masks of one vocabulary share: built once per tokenizer. */
let indexIds = 0;

export class TokenIndex {
  readonly id = ++indexIds;
  readonly vocabSize: number;
  readonly bytes: (Uint8Array | undefined)[];
  private readonly all: Trie;
  /** Tokens holding `"` or `\`: the ones that can leave or escape inside a string. */
  private readonly exits: Trie;
  /** Tokens that are plain string content from a character boundary, and their character counts. */
  private readonly inner: Int32Array;
  private readonly innerChars: Int32Array;
  private readonly innerBits = new Map<number, Bits>();
  readonly words: number;

  constructor(tok: Tokenizer) {
    this.vocabSize = tok.vocabSize;
    this.words = Math.ceil(this.vocabSize / 32);
    this.bytes = [];
    const list: { id: number; bytes: Uint8Array; key: string }[] = [];
    const exits: typeof list = [];
    const inner: [number, number][] = [];
    for (let id = 0; id < this.vocabSize; id++) {
      // Special tokens are not text: they never appear inside structured output.
      const b = tok.isSpecial(id) ? undefined : tok.tokenBytes(id);
      this.bytes.push(b);
      if (!b || b.length === 0) continue;
      const entry = { id, bytes: b, key: tok.tokenBinary(id)! };
      list.push(entry);
      if (b.includes(0x22) || b.includes(0x5c)) exits.push(entry);
      const c = stringChars(b);
      if (c > 0) inner.push([id, c]);
    }
    this.all = buildTrie(list);
    this.exits = buildTrie(exits);
    inner.sort((a, b) => a[1] - b[1]);
    this.inner = Int32Array.from(inner.map((x) => x[0]));
    this.innerChars = Int32Array.from(inner.map((x) => x[1]));
  }

  newBits(): Bits {
    return new Uint32Array(this.words);
  }

  /** Plain string tokens of at most `budget` characters. */
  private innerUpTo(budget: number): Bits {
    const n = this.innerChars.length;
    const last = n ? this.innerChars[n - 1] : 0;
    const key = Math.min(budget, last);
    let bits = this.innerBits.get(key);
    if (!bits) {
      bits = this.newBits();
      for (let i = 0; i < n && this.innerChars[i] <= key; i++) bits[this.inner[i] >>> 5] |= 1 << (this.inner[i] & 31);
      this.innerBits.set(key, bits);
    }
    return bits;
  }

  /** The tokens that keep some stack alive, OR-ed into `out`. */
  allowed(stacks: readonly S[], out: Bits): void {
    const general: S[] = [];
    for (const s of stacks) {
      if (!s) continue;
      const f = s.f;
      if (f.t === "str" && !f.n.re && f.need === 0 && f.esc === 0) {
        const inner = this.innerUpTo(f.n.max - f.c);
        for (let i = 0; i < out.length; i++) out[i] |= inner[i];
        this.walk(this.exits, 0, [s], out);
      } else general.push(s);
    }
    if (general.length) this.walk(this.all, 0, general, out);
  }

  private walk(t: Trie, nodeId: number, stacks: readonly S[], out: Bits): void {
    for (let ch = t.first[nodeId]; ch >= 0; ch = t.next[ch]) {
      const b = t.byte[ch];
      let next: S[] = [];
      let free = false;
      for (const s of stacks) {
        if (!s) continue;
        for (const x of step(s, b)) {
          if (x && x.f.t === "text" && x.f.k < 0) free = true;
          next.push(x);
        }
      }
      if (free) {
        // Free text from here on: every token below is allowed.
        for (let k = t.lo[ch]; k < t.hi[ch]; k++) out[t.order[k] >>> 5] |= 1 << (t.order[k] & 31);
        continue;
      }
      if (!next.length) continue;
      if (next.length > 1) next = dedupe(next);
      const id = t.tok[ch];
      if (id >= 0) out[id >>> 5] |= 1 << (id & 31);
      if (t.first[ch] >= 0) this.walk(t, ch, next, out);
    }
  }
}

const indexes = new WeakMap<Tokenizer, TokenIndex>();

/** The vocabulary index of a tokenizer, built on first use (a few hundred ms for 100k tokens). */
export function tokenIndex(tok: Tokenizer): TokenIndex {
  let ix = indexes.get(tok);
  if (!ix) indexes.set(tok, (ix = new TokenIndex(tok)));
  return ix;
}

export interface Mask {
  /** The allowed tokens; empty when `free`. */
  bits: Bits;
  /** Whether the output may end here. */
  end: boolean;
  /** Whether every text token is allowed (the mask need not be applied). */
  free: boolean;
}

const NONE: Bits = new Uint32Array(0);

/** Most recently used masks by state key; a 100k-token mask is 12.5 KB, so this holds about 3 MB. */
const cache = new Map<string, Mask>();
const CACHE_SIZE = 256;

export function maskFor(index: TokenIndex, stacks: readonly S[]): Mask {
  // Keys carry grammar node ids, which are never reused, and the index's own id.
  const key = stacks.map(stackKey).sort().join("\n") + `#${index.id}`;
  let m = cache.get(key);
  if (m) {
    cache.delete(key);
    cache.set(key, m);
    return m;
  }
  // Free text from here on: anything may follow, so there is nothing to compute.
  const free = stacks.some((s) => s !== null && s.f.t === "text" && s.f.k < 0);
  const bits = free ? NONE : index.newBits();
  if (!free) index.allowed(stacks, bits);
  m = { bits, end: stacks.some(canEnd), free };
  cache.set(key, m);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return m;
}
