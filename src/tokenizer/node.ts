/**
 * Node entry: everything in ./index, with the cl100k rank file read from
 * node_modules (gpt-tokenizer ships it), and the tokenizer of a GGUF file.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { openGGUF } from "../gguf/node";
import { setCl100kRankSource } from "./ranks";
import { Tokenizer } from "./tokenizer";

export * from "./index";

export function cl100kRankPath(): string {
  return createRequire(import.meta.url).resolve("gpt-tokenizer/data/cl100k_base.tiktoken");
}

setCl100kRankSource(() => readFileSync(cl100kRankPath(), "latin1"));

/** The tokenizer of a GGUF file's metadata, or the built-in one when no file is given. */
export async function loadTokenizer(modelPath?: string): Promise<Tokenizer> {
  if (modelPath === undefined) return Tokenizer.arcade100k();
  const file = await openGGUF(modelPath);
  await file.close();
  if (!file.metadata.has("tokenizer.ggml.tokens")) throw new Error(`${modelPath} has no tokenizer metadata (tokenizer.ggml.tokens)`);
  try {
    return Tokenizer.fromGGUF(file.metadata);
  } catch (e) {
    throw new Error(`${modelPath}: ${(e as Error).message}`);
  }
}
