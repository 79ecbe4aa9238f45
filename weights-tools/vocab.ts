/**
 * Which tokenizer metadata a converted model gets (docs/model.md, Tokenizer metadata): the repo's own tokenizer.json when
 * there is one; else the built-in Arcade100k vocabulary when the model has its 100352 rows; else a
 * placeholder vocabulary, so the file still loads everywhere.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { str, u32 } from "../src/gguf/metadata";
import type { Metadata } from "../src/gguf/types";
// The Node entry registers where the cl100k_base rank file is read from (Arcade100k's vocabulary).
import "../src/tokenizer/node";
import { arcade100kGGUFMetadata, placeholderVocabGGUFMetadata } from "../src/tokenizer/gguf";
import { chatTemplateOf, hfTokenizerGGUFMetadata } from "./hf-tokenizer";
import type { StableLMParams } from "./stablelm-config";

export const ARCADE100K_ROWS = 100352;

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** `dir` is the HF folder (undefined for synthetic models, which have no tokenizer files). */
export async function tokenizerMetadata(dir: string | undefined, hp: StableLMParams, warn: (msg: string) => void): Promise<Metadata> {
  const tokPath = dir === undefined ? undefined : join(dir, "tokenizer.json");
  const cfgPath = dir === undefined ? undefined : join(dir, "tokenizer_config.json");
  const tokenizerConfig = cfgPath && existsSync(cfgPath) ? await readJson(cfgPath) : undefined;
  const chatTemplate = chatTemplateOf(tokenizerConfig);

  let meta: Metadata;
  if (tokPath && existsSync(tokPath)) {
    meta = hfTokenizerGGUFMetadata({ tokenizer: await readJson(tokPath), tokenizerConfig, vocabSize: hp.vocabSize, bosTokenId: hp.bosTokenId, eosTokenId: hp.eosTokenId }, tokPath);
  } else if (hp.vocabSize === ARCADE100K_ROWS) {
    meta = arcade100kGGUFMetadata();
    // Fine-tunes (e.g. the ChatML chat model, eos <|im_end|>) change these ids; the vocabulary stays Arcade100k.
    if (hp.bosTokenId !== undefined && hp.bosTokenId < ARCADE100K_ROWS) meta.set("tokenizer.ggml.bos_token_id", u32(hp.bosTokenId));
    if (hp.eosTokenId !== undefined && hp.eosTokenId < ARCADE100K_ROWS) meta.set("tokenizer.ggml.eos_token_id", u32(hp.eosTokenId));
  } else {
    warn(`no tokenizer.json and vocab_size ${hp.vocabSize} is not Arcade100k's ${ARCADE100K_ROWS}: writing a placeholder vocabulary (text will not tokenize like the real model)`);
    meta = placeholderVocabGGUFMetadata(hp.vocabSize);
  }
  if (chatTemplate !== undefined) meta.set("tokenizer.chat_template", str(chatTemplate));
  return meta;
}
