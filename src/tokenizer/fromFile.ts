/** Node-only: the tokenizer of a GGUF file's metadata, or the built-in one when no file is given. */
import { openGGUF } from "../gguf/file";
import { Tokenizer } from "./index";

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
