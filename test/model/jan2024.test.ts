/**
 * Files like Stability's January 2024 GGUFs of stablelm-2-1_6b and
 * stablelm-2-zephyr-1_6b (weights-tools/jan2024.ts: no tokenizer.ggml.pre,
 * no head_count_kv, use_parallel_residual true on a sequential model, PAD ids
 * USER_DEFINED, zephyr's chat template or none), with synthetic tiny weights:
 * they load, tokenize exactly as the stablelm2 fingerprint says, chat as
 * zephyr, and generate the same tokens on the reference and WASM engines;
 * llama.cpp loads them too.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readModelFacts } from "../../src/api/served-model";
import { loadWasmEngine } from "../../src/engine/node";
import { generate } from "../../src/generate/generator";
import { openGGUF } from "../../src/gguf/node";
import { referenceEngine, type Engine } from "../../src/model/engine";
import { loadReferenceModel } from "../../src/model/node";
import { encodeChat } from "../../src/tokenizer/chat";
import type { Tokenizer } from "../../src/tokenizer/tokenizer";
import { JAN2024_KEYS, JAN2024_VARIANTS } from "../../weights-tools/jan2024";
import { jan2024GGUF } from "../../weights-tools/fixtures";
import { llamaLogProbs, logSoftmax, top2 } from "../helpers/llama";

const fixture = (name: string) => new URL(`../fixtures/tokenizer/${name}`, import.meta.url);
const FINGERPRINT = readFileSync(fixture("fingerprint.txt"), "utf8");
const FINGERPRINT_IDS = JSON.parse(readFileSync(fixture("fingerprint.ids.txt"), "utf8")) as number[];

async function greedy(engine: Engine, tokenizer: Tokenizer, prompt: number[]): Promise<number[]> {
  const ids: number[] = [];
  for await (const e of generate(engine, tokenizer, { prompt, maxTokens: 8, sampling: { temperature: 0 }, stopTokenIds: [], seed: 1 })) if (e.type === "token") ids.push(e.id);
  return ids;
}

describe.each(JAN2024_VARIANTS)("a January 2024 %s GGUF", (variant) => {
  const zephyr = variant === "stablelm-2-zephyr-1_6b";

  it("has that converter's key set: no tokenizer.ggml.pre, no head_count_kv", async () => {
    const f = await openGGUF(await jan2024GGUF(variant));
    await f.close();
    expect([...f.metadata.keys()]).toEqual(JAN2024_KEYS.filter((k) => zephyr || k !== "tokenizer.chat_template"));
    expect(f.metadata.get("stablelm.use_parallel_residual")?.value).toBe(true);
  });

  it("loads with the 1.6B layout: MHA, sequential residual (ffn_norm present) whatever the flag says", async () => {
    const { model } = await loadReferenceModel(await jan2024GGUF(variant));
    expect(model.config.numKVHeads).toBe(model.config.numHeads);
    expect(model.config.parallelResidual).toBe(false);
  });

  it("tokenizes as stablelm2 (the 198-id fingerprint), and chats as zephyr or not at all", async () => {
    const f = await openGGUF(await jan2024GGUF(variant));
    await f.close();
    const logs: string[] = [];
    const facts = readModelFacts(f.metadata, { hint: "pass a template", log: (m) => logs.push(m) });
    expect(facts.synthetic).toBe(false);
    expect(facts.tokenizer.encode(FINGERPRINT)).toEqual(FINGERPRINT_IDS);
    expect(facts.tokenizer.decode(FINGERPRINT_IDS)).toBe(FINGERPRINT);
    if (zephyr) {
      expect(facts.chatTemplate).toBe("zephyr");
      expect(encodeChat(facts.tokenizer, [{ role: "user", content: "Hi" }], { template: "zephyr" })).toEqual([27, 91, 882, 91, 397, 13347, 100257, 198, 27, 91, 78191, 91, 397]);
    } else {
      expect(facts.chatTemplate).toBeUndefined();
      expect(logs.join("\n")).toMatch(/no tokenizer\.chat_template/);
    }
  });

  it("generates the same greedy tokens on the reference and WASM engines; llama.cpp loads it and agrees", async () => {
    const path = await jan2024GGUF(variant);
    const f = await openGGUF(path);
    await f.close();
    const { tokenizer } = readModelFacts(f.metadata, { hint: "" });
    const prompt = tokenizer.encode("The capital of France is");
    const { model } = await loadReferenceModel(path);
    const ref = await greedy(referenceEngine(model), tokenizer, prompt);
    const wasm = await loadWasmEngine(path, { threads: 1 });
    try {
      expect(await greedy(wasm, tokenizer, prompt)).toEqual(ref);
    } finally {
      await wasm.close?.();
    }
    expect(ref).toHaveLength(8);
    // llama.cpp has no pre-tokenizer name here and would split text its default way: compare on our token ids.
    const tokens = [...prompt, ...ref.slice(0, -1)];
    const theirs = await llamaLogProbs(path, tokens, model.config.vocabSize);
    const ours = model.forward(model.newSequence(), tokens, 0, { allLogits: true }).map(logSoftmax);
    for (let i = prompt.length - 1; i < tokens.length; i++) {
      if (top2(ours[i]).margin > 0.05) expect(top2(theirs[i]).top).toBe(top2(ours[i]).top);
    }
  });
});
