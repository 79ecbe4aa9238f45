/**
 * Byte-pair merging of one pre-token (docs/model.md, Ranks and the split): repeatedly merge the adjacent pair with the lowest
 * priority, leftmost first on ties — tiktoken's loop, which equals HF/llama.cpp merge-list BPE when
 * the merge list was derived from the ranks.
 *
 * Two exact implementations: a flat scan (fast for the short pieces of ordinary text) and a
 * heap + linked list that stays O(n log n) on pathological pieces (a megabyte without a break).
 */

export interface MergeTable {
  /** Concatenated bytes (binary string) of a mergeable pair → priority, lower merges first. */
  pairRank: Map<string, number>;
  /**
   * Merge-list mode only: byte length of the left part of the merge with this priority. A pair then
   * merges only if it is that exact split (HF semantics); without it, any split whose concatenation
   * is ranked merges (tiktoken semantics).
   */
  leftLen?: Int32Array;
}

/** Pieces longer than this (in bytes) use the heap; below it the flat scan is faster. */
const HEAP_THRESHOLD = 96;

const NONE = Number.POSITIVE_INFINITY;

function rankOf(t: MergeTable, piece: string, start: number, mid: number, end: number): number {
  const r = t.pairRank.get(piece.substring(start, end));
  if (r === undefined) return NONE;
  if (t.leftLen !== undefined && t.leftLen[r] !== mid - start) return NONE;
  return r;
}

/** Boundaries of the final parts: [0, b1, b2, …, n]. */
export function bpeBoundaries(piece: string, t: MergeTable): Int32Array {
  return piece.length > HEAP_THRESHOLD ? bpeHeap(piece, t) : bpeFlat(piece, t);
}

export function bpeFlat(piece: string, t: MergeTable): Int32Array {
  const n = piece.length;
  const starts = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) starts[i] = i;
  // ranks[i] = priority of merging part i with part i+1.
  const ranks = new Float64Array(Math.max(n - 1, 0));
  for (let i = 0; i + 1 < n; i++) ranks[i] = rankOf(t, piece, i, i + 1, i + 2);
  let parts = n; // starts has parts+1 live entries
  for (;;) {
    let best = NONE;
    let at = -1;
    for (let i = 0; i + 1 < parts; i++) {
      if (ranks[i] < best) {
        best = ranks[i];
        at = i;
      }
    }
    if (at < 0) break;
    // Drop boundary at+1: parts at and at+1 become one.
    starts.copyWithin(at + 1, at + 2, parts + 1);
    ranks.copyWithin(at, at + 1, parts - 1);
    parts--;
    if (at + 1 < parts) ranks[at] = rankOf(t, piece, starts[at], starts[at + 1], starts[at + 2]);
    if (at > 0) ranks[at - 1] = rankOf(t, piece, starts[at - 1], starts[at], starts[at + 1]);
  }
  return starts.slice(0, parts + 1);
}

export function bpeHeap(piece: string, t: MergeTable): Int32Array {
  const n = piece.length;
  // Parts are named by their start byte, which never changes when a part absorbs its right neighbour.
  const next = new Int32Array(n + 1);
  const prev = new Int32Array(n + 1);
  const alive = new Uint8Array(n + 1);
  for (let i = 0; i <= n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
    alive[i] = 1;
  }
  // Min-heap keyed by (priority, left start); payload: the right part's start and end, to detect
  // entries made stale by an earlier merge of either part.
  const cap = 3 * n + 4;
  const key = new Float64Array(cap);
  const pos = new Int32Array(cap);
  const rStart = new Int32Array(cap);
  const rEnd = new Int32Array(cap);
  let size = 0;
  const stride = n + 1;

  const push = (left: number) => {
    const mid = next[left];
    if (mid >= n) return;
    const end = next[mid];
    const r = rankOf(t, piece, left, mid, end);
    if (r === NONE) return;
    let i = size++;
    const k = r * stride + left;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (key[p] <= k) break;
      key[i] = key[p];
      pos[i] = pos[p];
      rStart[i] = rStart[p];
      rEnd[i] = rEnd[p];
      i = p;
    }
    key[i] = k;
    pos[i] = left;
    rStart[i] = mid;
    rEnd[i] = end;
  };

  for (let i = 0; i + 1 < n; i++) push(i);

  while (size > 0) {
    const left = pos[0];
    const mid = rStart[0];
    const end = rEnd[0];
    // Pop the root.
    size--;
    if (size > 0) {
      const k = key[size];
      const lp = pos[size];
      const ls = rStart[size];
      const le = rEnd[size];
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= size) break;
        if (c + 1 < size && key[c + 1] < key[c]) c++;
        if (key[c] >= k) break;
        key[i] = key[c];
        pos[i] = pos[c];
        rStart[i] = rStart[c];
        rEnd[i] = rEnd[c];
        i = c;
      }
      key[i] = k;
      pos[i] = lp;
      rStart[i] = ls;
      rEnd[i] = le;
    }
    if (!alive[left] || next[left] !== mid || next[mid] !== end) continue;
    alive[mid] = 0;
    next[left] = end;
    prev[end] = left;
    if (prev[left] >= 0) push(prev[left]);
    push(left);
  }

  const out: number[] = [];
  for (let i = 0; i < n; i = next[i]) out.push(i);
  out.push(n);
  return Int32Array.from(out);
}
