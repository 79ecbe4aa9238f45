/** Seeded random strings that stress the split regex and BPE: mixed scripts, digits, whitespace runs, emoji, combining marks, lone surrogates. */

export { seededRandom as rng } from "../../src/generate/sampler";

const POOLS: string[][] = [
  ["the", " the", "Hello", " world", "ing", "tion", "AND", "I", " a", "x", "Z", "q"],
  ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'ſ", "'K", "'", "\u2019s"],
  ["0", "1", "7", "42", "2024", "3.14", "1,000", "٣", "२", "３", "²", "Ⅻ", "½"],
  [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\u00a0", "\u3000", "\u2009", "\u0085", "\ufeff", "\u000b", "\u000c", "\u2028"],
  [".", ",", "!", "?", "...", "--", "==", "()", "{", "}", "<", ">", "|", "#", "@", "$", "%", "^", "&", "*", "\"", "`", "~", "\\", "/", "_", "-"],
  ["привет", " мир", "Ωμέγα", "日本語", "中文", "テキスト", "ひらがな", "한국어", "مرحبا", "שלום", "हिन्दी", "ไทย", "ភាសា", "ğüş", "Straße", "ǅ", "ﬁ"],
  ["😀", "🚀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "✅", "🦙", "\u2603", "©", "™"],
  ["\u0301", "\u0300\u0302", "e\u0301", "\u0308\u0308\u0308", "\u20dd", "\u093f", "\u0e31", "\u17b6"],
  ["\ud800", "\udc00", "\udbff", "a\udfffb"],
  ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|user|>", "<|fim_prefix|>", "<|endoftext", "|>"],
];

/** A string of up to `maxParts` pieces; occasionally a piece repeats many times (long runs). */
export function randomText(r: () => number, maxParts = 24): string {
  const n = 1 + Math.floor(r() * maxParts);
  let s = "";
  for (let i = 0; i < n; i++) {
    const pool = POOLS[Math.floor(r() * POOLS.length)];
    let piece = pool[Math.floor(r() * pool.length)];
    if (r() < 0.05) piece = piece.repeat(2 + Math.floor(r() * 40));
    s += piece;
  }
  return s;
}

/** Random code points from all planes (assigned or not), excluding surrogates. */
export function randomCodePoints(r: () => number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    const plane = r();
    let cp = plane < 0.6 ? Math.floor(r() * 0x3000) : plane < 0.9 ? Math.floor(r() * 0x10000) : 0x10000 + Math.floor(r() * 0x20000);
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x20;
    s += String.fromCodePoint(cp);
  }
  return s;
}
