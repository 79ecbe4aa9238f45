/**
 * The k largest logits as a min-heap of indices: O(V log k) instead of sorting V.
 * The heap's final layout is part of the sampler's contract: the exact path sums
 * weights in this order, so every swap here is the one the sampler has always made.
 */

let heap = new Int32Array(0);

/** Indices of the k largest values (ties: lower index first), in heap order. The result is reused by the next call. */
export function topKIndices(x: Float32Array, k: number): Int32Array {
  if (heap.length < k) heap = new Int32Array(k);
  const h = heap.subarray(0, k);
  let size = 0;
  // a is worse than b: smaller, or equal and later in the vocabulary.
  const worse = (a: number, b: number) => x[a] < x[b] || (x[a] === x[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(h[l], h[m])) m = l;
      if (r < size && worse(h[r], h[m])) m = r;
      if (m === i) return;
      const s = h[i];
      h[i] = h[m];
      h[m] = s;
      i = m;
    }
  };
  const V = x.length;
  let t = 0;
  for (; t < V && size < k; t++) {
    h[size] = t;
    for (let i = size++; i > 0 && worse(h[i], h[(i - 1) >> 1]); i = (i - 1) >> 1) {
      const p = (i - 1) >> 1;
      const s = h[i];
      h[i] = h[p];
      h[p] = s;
    }
  }
  // Once full, a later index replaces the root only when strictly larger (on a tie the root,
  // with the lower index, wins), so most of the vocabulary costs one comparison.
  let root = x[h[0]];
  for (; t < V; t++) {
    if (x[t] > root) {
      h[0] = t;
      down(0);
      root = x[h[0]];
    }
  }
  return h;
}
