/**
 * Whether two GGUF files carry the same tokenizer. Comparing two models token by token (KL
 * divergence between a quantized file and its source) only means something when every id
 * names the same piece in both and a text splits the same way.
 */
import { formatValue } from "../gguf/metadata";
import type { MetaValue, Metadata } from "../gguf/types";

/** The keys that decide how text becomes ids (and which id a chunk starts with). */
const KEYS = [
  "tokenizer.ggml.model",
  "tokenizer.ggml.pre",
  "tokenizer.ggml.tokens",
  "tokenizer.ggml.token_type",
  "tokenizer.ggml.merges",
  "tokenizer.ggml.bos_token_id",
  "tokenizer.ggml.add_bos_token",
];

/** How the tokenizers of `a` and `b` differ, in one line, or undefined when they are the same. */
export function vocabularyDifference(a: Metadata, b: Metadata): string | undefined {
  for (const key of KEYS) {
    const va = a.get(key);
    const vb = b.get(key);
    if (va === undefined && vb === undefined) continue;
    if (va === undefined || vb === undefined) return `${key} is ${va === undefined ? "missing from the first" : "missing from the second"}`;
    const diff = valueDifference(va, vb);
    if (diff !== undefined) return `${key} ${diff}`;
  }
  return undefined;
}

function valueDifference(a: MetaValue, b: MetaValue): string | undefined {
  if (a.type !== b.type) return "has different types";
  if (Array.isArray(a.value) && Array.isArray(b.value)) {
    if (a.value.length !== b.value.length) return `has ${a.value.length} entries against ${b.value.length}`;
    for (let i = 0; i < a.value.length; i++) {
      const x = a.value[i];
      const y = b.value[i];
      const same = typeof x === "object" && typeof y === "object" ? valueDifference(x as MetaValue, y as MetaValue) === undefined : x === y;
      if (!same) return `differs at entry ${i}: ${JSON.stringify(String(x))} against ${JSON.stringify(String(y))}`;
    }
    return undefined;
  }
  return a.value === b.value ? undefined : `is ${formatValue(a)} against ${formatValue(b)}`;
}
