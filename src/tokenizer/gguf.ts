/**
 * Vocabulary → GGUF tokenizer metadata (docs/model.md, Tokenizer metadata), in the shape llama.cpp's `gpt2` loader expects:
 * byte-unicode tokens, token types, "left right" merges, and `[PAD<id>]` UNUSED fillers for ids
 * without a token.
 */
import { ValueType, type Metadata, type MetaValue } from "../gguf/types";
import { binaryToUnicodeToken } from "./byte-unicode";
import { mergesFromRanks } from "./merges";
import { ARCADE_SPECIAL_START, ARCADE_SPECIAL_TOKENS, ARCADE_VOCAB_SIZE, ENDOFTEXT_ID } from "./specials";
import { TokenType, arcade100kRanks } from "./tokenizer";

const str = (value: string): MetaValue => ({ type: ValueType.STRING, value });
const u32 = (value: number): MetaValue => ({ type: ValueType.UINT32, value });
const strs = (value: string[]): MetaValue => ({ type: ValueType.ARRAY, itemType: ValueType.STRING, value });
const i32s = (value: number[]): MetaValue => ({ type: ValueType.ARRAY, itemType: ValueType.INT32, value });

let arcadeMerges: string[] | undefined;

/** The 100000 Arcade100k merges ("left right", byte-unicode), derived once (~0.2 s). */
export function arcade100kMerges(): string[] {
  arcadeMerges ??= mergesFromRanks(arcade100kRanks()).map(([l, r]) => `${binaryToUnicodeToken(l)} ${binaryToUnicodeToken(r)}`);
  return arcadeMerges;
}

function vocabMetadata(tokens: string[], types: number[], merges: string[], eos: number, pre: string): Metadata {
  return new Map<string, MetaValue>([
    ["tokenizer.ggml.model", str("gpt2")],
    ["tokenizer.ggml.pre", str(pre)],
    ["tokenizer.ggml.tokens", strs(tokens)],
    ["tokenizer.ggml.token_type", i32s(types)],
    ["tokenizer.ggml.merges", strs(merges)],
    ["tokenizer.ggml.bos_token_id", u32(eos)],
    ["tokenizer.ggml.eos_token_id", u32(eos)],
    ["tokenizer.ggml.unknown_token_id", u32(eos)],
    ["tokenizer.ggml.padding_token_id", u32(eos)],
    // llama.cpp's BPE default is already false; written so no reader has to know that (docs/model.md, No BOS).
    ["tokenizer.ggml.add_bos_token", { type: ValueType.BOOL, value: false }],
  ]);
}

/** Arcade100k for vocab size 100352 (the model's rows), as the converter writes it. */
export function arcade100kGGUFMetadata(opts: { chatTemplate?: string } = {}): Metadata {
  const ranks = arcade100kRanks();
  const tokens: string[] = new Array(ARCADE_VOCAB_SIZE);
  const types: number[] = new Array(ARCADE_VOCAB_SIZE);
  for (let id = 0; id < ARCADE_VOCAB_SIZE; id++) {
    const special = id - ARCADE_SPECIAL_START;
    if (id < ranks.length) {
      tokens[id] = binaryToUnicodeToken(ranks[id]);
      types[id] = TokenType.NORMAL;
    } else if (special >= 0 && special < ARCADE_SPECIAL_TOKENS.length) {
      tokens[id] = ARCADE_SPECIAL_TOKENS[special];
      types[id] = TokenType.CONTROL;
    } else {
      tokens[id] = `[PAD${id}]`;
      types[id] = TokenType.UNUSED;
    }
  }
  const meta = vocabMetadata(tokens, types, arcade100kMerges(), ENDOFTEXT_ID, "stablelm2");
  if (opts.chatTemplate !== undefined) meta.set("tokenizer.chat_template", str(opts.chatTemplate));
  return meta;
}

/** Merges of the placeholder vocabulary, each creating the next id after the 256 bytes. */
const PLACEHOLDER_MERGES = ["Ġ t", "h e", "Ġt he", "i n", "e r", "a n", "Ġ a", "o n"];

/**
 * A small but valid byte-level vocabulary for test checkpoints of any `vocabSize` ≥ 257: ids 0..255
 * are the bytes (in byte order), then up to 8 merged tokens, then `<|endoftext|>` (CONTROL, bos =
 * eos), then `[PAD<id>]` fillers. Text encodes with it (mostly to byte ids), and llama.cpp loads it.
 */
export function placeholderVocabGGUFMetadata(vocabSize: number): Metadata {
  if (!Number.isInteger(vocabSize) || vocabSize < 257) throw new RangeError(`placeholder vocabulary needs vocabSize ≥ 257, got ${vocabSize}`);
  const tokens: string[] = [];
  const types: number[] = [];
  for (let b = 0; b < 256; b++) {
    tokens.push(binaryToUnicodeToken(String.fromCharCode(b)));
    types.push(TokenType.NORMAL);
  }
  const merges = PLACEHOLDER_MERGES.slice(0, Math.max(0, vocabSize - 257));
  for (const m of merges) {
    tokens.push(m.replace(" ", ""));
    types.push(TokenType.NORMAL);
  }
  const eos = tokens.length;
  tokens.push("<|endoftext|>");
  types.push(TokenType.CONTROL);
  for (let id = tokens.length; id < vocabSize; id++) {
    tokens.push(`[PAD${id}]`);
    types.push(TokenType.UNUSED);
  }
  return vocabMetadata(tokens, types, merges, eos, "stablelm2");
}
