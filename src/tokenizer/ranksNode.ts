/** Node-only: reads the rank file shipped by gpt-tokenizer@4.0.0 (SPEC §6). */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { setCl100kRankSource } from "./ranks";

export function cl100kRankPath(): string {
  return createRequire(import.meta.url).resolve("gpt-tokenizer/data/cl100k_base.tiktoken");
}

setCl100kRankSource(() => readFileSync(cl100kRankPath(), "latin1"));
