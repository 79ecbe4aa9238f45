/**
 * Merge list from tiktoken ranks, as llama.cpp's and HF's converters derive it: for each multi-byte
 * token in rank order, BPE its bytes using only lower ranks; the two parts left are its merge.
 * Merge i therefore creates rank 256 + i when ranks 0..255 are the single bytes.
 */
import { bpeFlat } from "./bpe";

export function mergesFromRanks(ranks: readonly string[]): [string, string][] {
  const lower = new Map<string, number>();
  const merges: [string, string][] = [];
  for (let r = 0; r < ranks.length; r++) {
    const tok = ranks[r];
    if (tok.length === 1) {
      lower.set(tok, r);
      continue;
    }
    // `lower` holds exactly the ranks below r, which is what the merge must be built from.
    const b = bpeFlat(tok, { pairRank: lower });
    if (b.length !== 3) throw new Error(`rank ${r} cannot be built from two lower-ranked tokens (${b.length - 1} parts)`);
    merges.push([tok.slice(0, b[1]), tok.slice(b[1])]);
    lower.set(tok, r);
  }
  return merges;
}
