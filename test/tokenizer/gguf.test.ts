import { describe, expect, it } from "vitest";
import { parseGGUFBuffer } from "../../src/gguf/reader";
import { ValueType, type Metadata } from "../../src/gguf/types";
import { encodeGGUF } from "../../src/gguf/writer";
import { Tokenizer, arcade100kGGUFMetadata, arcade100kMerges, placeholderVocabGGUFMetadata } from "../../src/tokenizer/node";
import { mergesFromRanks } from "../../src/tokenizer/merges";
import { randomText, rng } from "./random-text";

const meta = arcade100kGGUFMetadata({ chatTemplate: "{{ '<|user|>' }}" });
const arr = (m: Metadata, k: string) => m.get(k)!.value as unknown[];
const tok = Tokenizer.arcade100k();

describe("arcade100kGGUFMetadata", () => {
  it("has the converter's keys and shapes (docs/model.md, Tokenizer metadata)", () => {
    expect(meta.get("tokenizer.ggml.model")).toEqual({ type: ValueType.STRING, value: "gpt2" });
    expect(meta.get("tokenizer.ggml.pre")).toEqual({ type: ValueType.STRING, value: "stablelm2" });
    for (const k of ["bos", "eos", "unknown"]) expect(meta.get(`tokenizer.ggml.${k}_token_id`)?.value).toBe(100257);
    expect(meta.get("tokenizer.ggml.tokens")).toMatchObject({ type: ValueType.ARRAY, itemType: ValueType.STRING });
    expect(meta.get("tokenizer.ggml.token_type")).toMatchObject({ type: ValueType.ARRAY, itemType: ValueType.INT32 });
    const tokens = arr(meta, "tokenizer.ggml.tokens") as string[];
    const types = arr(meta, "tokenizer.ggml.token_type") as number[];
    expect(tokens).toHaveLength(100352);
    expect(types).toHaveLength(100352);
    expect(tokens[220]).toBe("Ġ");
    expect(tokens[198]).toBe("Ċ");
    expect(tokens[9906]).toBe("Hello");
    expect(tokens[100256]).toBe("[PAD100256]");
    expect(types[100256]).toBe(5);
    expect(tokens[100257]).toBe("<|endoftext|>");
    expect(tokens[100277]).toBe("<|im_start|>");
    expect(types.slice(100257, 100289).every((t) => t === 3)).toBe(true);
    expect(tokens[100289]).toBe("[PAD100289]");
    expect(tokens[100351]).toBe("[PAD100351]");
    expect(types.slice(100289).every((t) => t === 5)).toBe(true);
    expect(types.slice(0, 100256).every((t) => t === 1)).toBe(true);
    expect(meta.get("tokenizer.chat_template")?.value).toBe("{{ '<|user|>' }}");
  });

  it("derives 100000 merges, merge i creating rank 256 + i", () => {
    const merges = arcade100kMerges();
    expect(merges).toHaveLength(100000);
    const tokens = arr(meta, "tokenizer.ggml.tokens") as string[];
    for (let i = 0; i < merges.length; i += 997) {
      const [l, r] = merges[i].split(" ");
      expect(l + r).toBe(tokens[256 + i]);
    }
    expect(merges.every((m) => m.split(" ").length === 2)).toBe(true);
  });

  it("uses only lower ranks in each merge", () => {
    const ranks = ["a", "b", "c", "ab", "abc", "bc"];
    expect(mergesFromRanks(ranks)).toEqual([["a", "b"], ["ab", "c"], ["b", "c"]]);
    expect(() => mergesFromRanks(["a", "b", "abc"])).toThrow(/cannot be built/);
  });

  it("rebuilds the same tokenizer: fromGGUF (merge-list BPE) encodes like the built-in one", () => {
    const fromMeta = Tokenizer.fromGGUF(meta);
    expect(fromMeta.vocabSize).toBe(100352);
    expect(fromMeta.eosId).toBe(100257);
    const r = rng(31);
    for (let i = 0; i < 1500; i++) {
      const s = randomText(r);
      expect(fromMeta.encode(s)).toEqual(tok.encode(s));
      expect(fromMeta.encode(s, { allowSpecial: true })).toEqual(tok.encode(s, { allowSpecial: true }));
    }
  });

  it("survives the GGUF writer and reader", async () => {
    const bytes = await encodeGGUF({ metadata: meta, tensors: [] });
    const { header } = await parseGGUFBuffer(bytes);
    const back = Tokenizer.fromGGUF(header.metadata);
    expect(back.encode("Hello, I am a 20 year old male")).toEqual([9906, 11, 358, 1097, 264, 220, 17, 15, 1060, 2362, 8762]);
    expect(back.decode([9906, 100257], {})).toBe("Hello<|endoftext|>");
  });

  it("rejects vocabularies it cannot encode exactly", () => {
    const withKey = (k: string, v: Metadata extends Map<string, infer V> ? V : never) => new Map(meta).set(k, v);
    expect(() => Tokenizer.fromGGUF(withKey("tokenizer.ggml.model", { type: ValueType.STRING, value: "llama" }))).toThrow(/unsupported tokenizer.ggml.model "llama"/);
    expect(() => Tokenizer.fromGGUF(withKey("tokenizer.ggml.pre", { type: ValueType.STRING, value: "llama-bpe" }))).toThrow(/unsupported tokenizer.ggml.pre/);
    expect(() => Tokenizer.fromGGUF(withKey("tokenizer.ggml.merges", { type: ValueType.ARRAY, itemType: ValueType.STRING, value: ["Ġ"] }))).toThrow(/merge 0/);
    const m = new Map(meta);
    m.delete("tokenizer.ggml.tokens");
    expect(() => Tokenizer.fromGGUF(m)).toThrow(/lacks tokenizer.ggml.tokens/);
  });
});

describe("fromHFTokenizerJson", () => {
  it("builds the same encoder from a tokenizer.json with vocab, merges and added tokens", () => {
    const tokens = arr(meta, "tokenizer.ggml.tokens") as string[];
    const vocab: Record<string, number> = {};
    for (let i = 0; i < 100256; i++) vocab[tokens[i]] = i;
    const json = {
      model: { type: "BPE", vocab, merges: arcade100kMerges().map((m) => m.split(" ")) },
      added_tokens: tokens.slice(100257, 100289).map((content, i) => ({ id: 100257 + i, content, special: true })),
    };
    const hf = Tokenizer.fromHFTokenizerJson(json, { vocabSize: 100352 });
    expect(hf.vocabSize).toBe(100352);
    expect(hf.eosId).toBe(100257);
    const r = rng(41);
    for (let i = 0; i < 300; i++) {
      const s = randomText(r);
      expect(hf.encode(s, { allowSpecial: true })).toEqual(tok.encode(s, { allowSpecial: true }));
    }
    expect(() => Tokenizer.fromHFTokenizerJson({ model: { type: "Unigram", vocab: {}, merges: [] } })).toThrow(/unsupported model type/);
    expect(() => Tokenizer.fromHFTokenizerJson({})).toThrow(/model.vocab/);
  });

  it("always splits out non-special added tokens", () => {
    const json = {
      model: { vocab: Object.fromEntries(Array.from({ length: 256 }, (_, b) => [(arr(placeholderVocabGGUFMetadata(257), "tokenizer.ggml.tokens") as string[])[b], b])), merges: [] },
      added_tokens: [{ id: 256, content: "<tool>", special: false }, { id: 257, content: "<|endoftext|>", special: true }],
    };
    const t = Tokenizer.fromHFTokenizerJson(json);
    expect(t.encode("a<tool>b<|endoftext|>")).toEqual([97, 256, 98, ...t.encode("<|endoftext|>")]);
    expect(t.encode("a<|endoftext|>", { allowSpecial: true })).toEqual([97, 257]);
  });
});

describe("placeholderVocabGGUFMetadata", () => {
  it.each([257, 260, 512, 4096])("gives a valid vocabulary of size %i", (n) => {
    const m = placeholderVocabGGUFMetadata(n);
    const tokens = arr(m, "tokenizer.ggml.tokens") as string[];
    const types = arr(m, "tokenizer.ggml.token_type") as number[];
    expect(tokens).toHaveLength(n);
    expect(types).toHaveLength(n);
    const eos = m.get("tokenizer.ggml.eos_token_id")!.value as number;
    expect(tokens[eos]).toBe("<|endoftext|>");
    expect(types[eos]).toBe(3);
    const t = Tokenizer.fromGGUF(m);
    const s = "the theory of everything, said Hello<|endoftext|>";
    expect(t.decode(t.encode(s))).toBe(s);
    expect(t.encode("x<|endoftext|>", { allowSpecial: true })).toEqual([120, eos]);
    expect(t.encode(" the").length).toBe(n >= 260 ? 1 : 4);
  });
  it("refuses sizes below 257", () => {
    expect(() => placeholderVocabGGUFMetadata(256)).toThrow(/vocabSize ≥ 257/);
  });
});
