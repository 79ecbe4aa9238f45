/**
 * Metadata as llama.cpp's converter wrote it in January 2024, when Stability
 * published the GGUFs of stablelm-2-1_6b and stablelm-2-zephyr-1_6b: before
 * `tokenizer.ggml.pre` existed (April 2024), before the converter wrote
 * `stablelm.attention.head_count_kv` (added with the 12B model), and with the
 * vocabulary built the Qwen way from the tiktoken ranks (ids without a token
 * are `[PAD<id>]` USER_DEFINED, not UNUSED; no padding id, no add_bos key).
 * The zephyr file carries the chat template of its tokenizer_config.json;
 * the base model has none. Reconstructed from that converter's code, not
 * copied from the files (we never download them): tests load synthetic
 * weights under this metadata to prove that such files still load, tokenize
 * as stablelm2 and chat as zephyr.
 */
import { bool, str } from "../src/gguf/metadata";
import { ValueType, type Metadata } from "../src/gguf/types";
import { TokenType } from "../src/tokenizer/tokenizer";

export type Jan2024Variant = "stablelm-2-1_6b" | "stablelm-2-zephyr-1_6b";
export const JAN2024_VARIANTS: readonly Jan2024Variant[] = ["stablelm-2-1_6b", "stablelm-2-zephyr-1_6b"];

/** The keys such a file holds, in the converter's order (the chat template only in zephyr's). */
export const JAN2024_KEYS = [
  "general.architecture",
  "general.name",
  "stablelm.context_length",
  "stablelm.embedding_length",
  "stablelm.block_count",
  "stablelm.feed_forward_length",
  "stablelm.rope.dimension_count",
  "stablelm.attention.head_count",
  "stablelm.use_parallel_residual",
  "stablelm.attention.layer_norm_epsilon",
  "general.file_type",
  "tokenizer.ggml.model",
  "tokenizer.ggml.tokens",
  "tokenizer.ggml.token_type",
  "tokenizer.ggml.merges",
  "tokenizer.ggml.bos_token_id",
  "tokenizer.ggml.eos_token_id",
  "tokenizer.ggml.unknown_token_id",
  "tokenizer.chat_template",
  "general.quantization_version",
] as const;

/** The zephyr chat template of the January 2024 tokenizer_config.json, with its line breaks between tags. */
export const ZEPHYR_JAN2024_TEMPLATE = [
  "{% for message in messages %}",
  "{% if message['role'] == 'user' %}",
  "{{ '<|user|>\\n' + message['content'] + eos_token }}",
  "{% elif message['role'] == 'system' %}",
  "{{ '<|system|>\\n' + message['content'] + eos_token }}",
  "{% elif message['role'] == 'assistant' %}",
  "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}",
  "{% endif %}",
  "{% if loop.last and add_generation_prompt %}",
  "{{ '<|assistant|>' }}",
  "{% endif %}",
  "{% endfor %}",
].join("\n");

/** Today's converter metadata (ours) → what the January 2024 converter wrote for `variant`. */
export function jan2024Metadata(modern: Metadata, variant: Jan2024Variant): Metadata {
  const out: Metadata = new Map();
  for (const key of JAN2024_KEYS) {
    let v = modern.get(key);
    if (key === "general.name") v = str(variant);
    // The remote-code config.json of the time had no use_parallel_residual, and the converter then wrote true.
    if (key === "stablelm.use_parallel_residual") v = bool(true);
    if (key === "tokenizer.chat_template") v = variant === "stablelm-2-zephyr-1_6b" ? str(ZEPHYR_JAN2024_TEMPLATE) : undefined;
    if (key === "tokenizer.ggml.token_type" && v?.type === ValueType.ARRAY) {
      v = { ...v, value: v.value.map((t) => (t === TokenType.UNUSED ? TokenType.USER_DEFINED : t)) } as typeof v;
    }
    if (v) out.set(key, v);
  }
  return out;
}
