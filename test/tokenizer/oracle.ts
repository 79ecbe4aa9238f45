/** tiktoken 1.0.22 (Rust, WASM) built as Arcade100k: cl100k ranks, the original `(?i:…)` regex, the 32 specials. */
import { Tiktoken } from "tiktoken/lite";
import cl100k from "tiktoken/encoders/cl100k_base.json" with { type: "json" };
import { ARCADE_PATTERN_ORIGINAL, ARCADE_SPECIAL_START, ARCADE_SPECIAL_TOKENS } from "../../src/tokenizer/node";

export function tiktokenArcade(): Tiktoken {
  const specials: Record<string, number> = {};
  ARCADE_SPECIAL_TOKENS.forEach((s, i) => (specials[s] = ARCADE_SPECIAL_START + i));
  return new Tiktoken(cl100k.bpe_ranks, specials, ARCADE_PATTERN_ORIGINAL);
}
