/** A tensor-less stablelm GGUF carrying only tokenizer metadata, for node-llama-cpp's `vocabOnly` load. */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeGGUF } from "../../src/gguf/writer";
import { ValueType, type Metadata } from "../../src/gguf/types";

export async function writeVocabOnlyGGUF(name: string, vocab: Metadata): Promise<string> {
  const m: Metadata = new Map();
  const u32 = (value: number) => ({ type: ValueType.UINT32, value }) as const;
  m.set("general.architecture", { type: ValueType.STRING, value: "stablelm" });
  m.set("general.name", { type: ValueType.STRING, value: `edgelm-${name}` });
  // The 1.6B model's hyper-parameters (docs/model.md, Metadata keys); llama.cpp reads them even for a vocab-only load.
  m.set("stablelm.context_length", u32(4096));
  m.set("stablelm.embedding_length", u32(2048));
  m.set("stablelm.block_count", u32(24));
  m.set("stablelm.feed_forward_length", u32(5632));
  m.set("stablelm.rope.dimension_count", u32(16));
  m.set("stablelm.attention.head_count", u32(32));
  m.set("stablelm.attention.head_count_kv", u32(32));
  m.set("stablelm.use_parallel_residual", { type: ValueType.BOOL, value: true });
  m.set("stablelm.attention.layer_norm_epsilon", { type: ValueType.FLOAT32, value: 1e-5 });
  for (const [k, v] of vocab) m.set(k, v);
  const path = join(tmpdir(), `edgelm-tokenizer-${process.pid}-${name}.gguf`);
  writeFileSync(path, await encodeGGUF({ metadata: m, tensors: [] }));
  return path;
}
