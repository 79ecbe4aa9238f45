/**
 * The Arcade100k split (docs/model.md, Ranks and the split), made to behave like the Rust regex that tiktoken (the
 * original Arcade100k implementation) runs:
 * - `(?i:…)` becomes explicit classes; Rust's simple case folding also folds `ſ` (U+017F) to `s`, so
 *   `'ſ` is a contraction there (llama.cpp's `[sS]` expansion disagrees; docs/tokenizer.md).
 * - JS `\s` differs from Unicode White_Space (it adds U+FEFF, lacks U+0085), so `\s` is spelled out.
 */
const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

export const ARCADE_PATTERN_SOURCE =
  `'(?:[sS\\u017f]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])` +
  `|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+` +
  `|\\p{N}` +
  `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
  `|[${WS}]*[\\r\\n]+` +
  `|[${WS}]+(?![^${WS}])` +
  `|[${WS}]+`;

/** The pattern as written in tokenizer.json / tiktoken (for oracles and docs). */
export const ARCADE_PATTERN_ORIGINAL =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export function arcadeSplitRegex(): RegExp {
  return new RegExp(ARCADE_PATTERN_SOURCE, "gu");
}

/** Pre-tokens of well-formed text (no specials handling here). */
export function pretokenize(text: string): string[] {
  return text.match(arcadeSplitRegex()) ?? [];
}
