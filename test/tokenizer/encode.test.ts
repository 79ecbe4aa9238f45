import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { bpeFlat, bpeHeap } from "../../src/tokenizer/bpe";
import { utf8Binary, wellFormed } from "../../src/tokenizer/binary";
import { ARCADE_SPECIAL_TOKENS, ENDOFTEXT_ID, Tokenizer, arcade100kRanks, pretokenize } from "../../src/tokenizer/node";
import { randomText, rng } from "./random-text";

const fixture = (name: string) => new URL(`../fixtures/tokenizer/${name}`, import.meta.url);
const tok = Tokenizer.arcade100k();

describe("Arcade100k encode", () => {
  it("reproduces llama.cpp's stablelm2 fingerprint (198 ids)", () => {
    const text = readFileSync(fixture("fingerprint.txt"), "utf8");
    const ids = JSON.parse(readFileSync(fixture("fingerprint.ids.txt"), "utf8")) as number[];
    expect(ids).toHaveLength(198);
    expect(tok.encode(text)).toEqual(ids);
    expect(tok.decode(ids)).toBe(text);
  });

  it.each([
    ["Hello", [9906]],
    ["Hello, I am a 20 year old male", [9906, 11, 358, 1097, 264, 220, 17, 15, 1060, 2362, 8762]],
    ["The weather is always wonderful", [791, 9282, 374, 2744, 11364]],
    ["My favorite ride at the amusement park", [5159, 7075, 12141, 520, 279, 62468, 6246]],
    ["12345 3.14159 1,000,000", [16, 17, 18, 19, 20, 220, 18, 13, 16, 19, 16, 20, 24, 220, 16, 11, 15, 15, 15, 11, 15, 15, 15]],
  ])("encode vector (docs/model.md, Test vectors): %j", (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
  });

  it("adds no BOS and encodes the empty string to nothing", () => {
    expect(tok.encode("")).toEqual([]);
    expect(tok.encode("Hello")[0]).not.toBe(ENDOFTEXT_ID);
  });

  it("has the model's vocabulary shape", () => {
    expect(tok.vocabSize).toBe(100352);
    expect(tok.bosId).toBe(100257);
    expect(tok.eosId).toBe(100257);
    expect(arcade100kRanks()).toHaveLength(100256);
    expect(tok.tokenBytes(100256)).toBeUndefined();
    expect(tok.tokenBytes(100351)).toBeUndefined();
    expect(tok.tokenBytes(100352)).toBeUndefined();
    expect([...tok.tokenBytes(220)!]).toEqual([0x20]);
    ARCADE_SPECIAL_TOKENS.forEach((s, i) => {
      expect(tok.isSpecial(100257 + i)).toBe(true);
      expect(tok.decode([100257 + i])).toBe(s);
    });
    expect(tok.isSpecial(9906)).toBe(false);
    expect(tok.specialId("<|im_start|>")).toBe(100277);
  });
});

describe("special tokens in text", () => {
  const text = "a<|endoftext|>b<|im_start|>user";
  it("are plain text by default", () => {
    const ids = tok.encode(text);
    expect(ids).not.toContain(ENDOFTEXT_ID);
    expect(ids).not.toContain(100277);
    expect(tok.decode(ids)).toBe(text);
  });
  it("are parsed only with allowSpecial", () => {
    const ids = tok.encode(text, { allowSpecial: true });
    expect(ids).toEqual([...tok.encode("a"), ENDOFTEXT_ID, ...tok.encode("b"), 100277, ...tok.encode("user")]);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.decode(ids, { skipSpecial: true })).toBe("abuser");
  });
  it("splits every one of the 32 specials when allowed", () => {
    const all = ARCADE_SPECIAL_TOKENS.join("x");
    const ids = tok.encode(all, { allowSpecial: true });
    expect(ids.filter((id) => tok.isSpecial(id))).toEqual(ARCADE_SPECIAL_TOKENS.map((_, i) => 100257 + i));
  });
  it("treats <|user|> as ordinary text even with allowSpecial", () => {
    expect(tok.encode("<|user|>", { allowSpecial: true })).toEqual(tok.encode("<|user|>"));
    expect(tok.encode("<|user|>").length).toBeGreaterThan(1);
  });
});

describe("decode", () => {
  it("round-trips valid Unicode byte-exactly", () => {
    const r = rng(7);
    for (let i = 0; i < 1000; i++) {
      const s = wellFormed(randomText(r));
      const ids = tok.encode(s);
      expect(tok.decode(ids)).toBe(s);
      expect(tok.decodeBytes(ids)).toEqual(new TextEncoder().encode(s));
    }
  });
  it("keeps a leading BOM (U+FEFF) and replaces lone surrogates with U+FFFD like TextEncoder", () => {
    expect(tok.decode(tok.encode("\ufeffhi"))).toBe("\ufeffhi");
    expect(tok.decode(tok.encode("a\ud800b\udc00"))).toBe("a\ufffdb\ufffd");
    expect(tok.encode("a\ud800b")).toEqual(tok.encode("a\ufffdb"));
  });
  it("replaces invalid UTF-8 in the output bytes with U+FFFD (non-fatal)", () => {
    // 9468 + 248 + 222 is 🚀 split over three tokens; the first alone is an incomplete sequence.
    const rocket = tok.encode("🚀");
    expect(rocket.length).toBeGreaterThan(1);
    expect(tok.decode(rocket)).toBe("🚀");
    expect(tok.decode(rocket.slice(0, 1))).toBe("\ufffd");
    expect(tok.decode([rocket[rocket.length - 1], ...rocket])).toBe("\ufffd🚀");
  });
  it("rejects out-of-range and non-integer ids clearly; padding ids decode to nothing", () => {
    expect(() => tok.decode([1, 100352])).toThrow(/token id 100352 is out of range/);
    expect(() => tok.decode([-1])).toThrow(/out of range/);
    expect(() => tok.decode([1.5])).toThrow(/out of range/);
    expect(tok.decode([100256, 100300])).toBe("");
  });
});

describe("BPE on long pieces", () => {
  it("heap merge equals the flat tiktoken loop", () => {
    const r = rng(11);
    const ranks = arcade100kRanks();
    const table = { pairRank: new Map(ranks.map((t, i) => [t, i])) };
    const alphabets = ["ab", " ", "a b", "\n ", "xyz.", "the ", "ééé", "=-"];
    for (let i = 0; i < 300; i++) {
      const alpha = alphabets[i % alphabets.length];
      let s = "";
      const n = 50 + Math.floor(r() * 400);
      for (let j = 0; j < n; j++) s += alpha[Math.floor(r() * alpha.length)];
      const bin = utf8Binary(s);
      expect(bpeHeap(bin, table)).toEqual(bpeFlat(bin, table));
    }
  });

  it.each([
    ["one letter", "a".repeat(131_072)],
    ["spaces", " ".repeat(131_072)],
    ["newlines", "\n".repeat(131_072)],
    ["a word without spaces", "qwertyuiopasdfghjklzxcvbnm".repeat(5_000)],
    ["combining marks", "e" + "\u0301".repeat(65_536)],
    ["punctuation", "!?".repeat(65_536)],
  ])("stays near-linear on %s (128 KB) and round-trips", (_name, s) => {
    const t0 = performance.now();
    const ids = tok.encode(s);
    // Quadratic merging would take minutes here; linear-ish takes well under a second.
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(tok.decode(ids)).toBe(s);
  });

  it("splits a whitespace run the way the Arcade regex does", () => {
    expect(pretokenize("a   b\n\n c")).toEqual(["a", "  ", " b", "\n\n", " c"]);
    expect(pretokenize("x'ſtop I'LL")).toEqual(["x", "'ſ", "top", " I", "'LL"]);
  });
});
