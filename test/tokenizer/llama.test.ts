/**
 * llama.cpp (node-llama-cpp 3.21.1's bundled build) loads our exported vocabulary and tokenizes to
 * the same ids. Nothing is downloaded; the GGUF is written under os.tmpdir().
 */
import { readFileSync, rmSync } from "node:fs";
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tokenizer, arcade100kGGUFMetadata, placeholderVocabGGUFMetadata } from "../../src/tokenizer/node";
import { writeVocabOnlyGGUF } from "./llama-vocab";
import { randomCodePoints, randomText, rng } from "./random-text";

let llama: Llama;
const files: string[] = [];
const models: LlamaModel[] = [];

async function load(name: string, meta: Parameters<typeof writeVocabOnlyGGUF>[1]): Promise<LlamaModel> {
  const path = await writeVocabOnlyGGUF(name, meta);
  files.push(path);
  const model = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
  models.push(model);
  return model;
}

function mismatches(model: LlamaModel, tok: Tokenizer, strings: string[], special: boolean) {
  const out: { s: string; llama: number[]; ours: number[] }[] = [];
  for (const s of strings) {
    const theirs = Array.from(model.tokenize(s, special) as readonly number[]);
    const ours = tok.encode(s, { allowSpecial: special });
    if (theirs.length !== ours.length || theirs.some((v, i) => v !== ours[i])) out.push({ s, llama: theirs, ours });
  }
  return out;
}

beforeAll(async () => {
  llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    usePrebuiltBinaries: true,
    logLevel: LlamaLogLevel.error,
    // node-llama-cpp's memory estimator tries a full load first, which a tensor-less file fails.
    logger: (level, message) => {
      if (!/missing tensor|failed to load model|simulating model resource usage/.test(message)) console.error(`[llama.cpp ${level}] ${message}`);
    },
  });
});

afterAll(async () => {
  for (const m of models) await m.dispose();
  await llama?.dispose();
  for (const f of files) rmSync(f, { force: true });
});

describe("llama.cpp with the exported Arcade100k vocabulary", () => {
  let model: LlamaModel;
  const tok = Tokenizer.arcade100k();
  beforeAll(async () => {
    model = await load("arcade", arcade100kGGUFMetadata());
  });

  it("loads it as a gpt2 vocabulary with eos 100257", () => {
    expect(model.tokens.eos).toBe(100257);
    expect(model.tokens.bos).toBe(100257);
  });

  it("gives the fingerprint's 198 ids", () => {
    const text = readFileSync(new URL("../fixtures/tokenizer/fingerprint.txt", import.meta.url), "utf8");
    const ids = JSON.parse(readFileSync(new URL("../fixtures/tokenizer/fingerprint.ids.txt", import.meta.url), "utf8"));
    expect(Array.from(model.tokenize(text, false) as readonly number[])).toEqual(ids);
  });

  it("agrees on 600 random strings (specials as text) and 300 with specials parsed", () => {
    const r = rng(21);
    expect(mismatches(model, tok, Array.from({ length: 600 }, () => randomText(r)), false)).toEqual([]);
    expect(mismatches(model, tok, Array.from({ length: 300 }, () => randomText(r)), true)).toEqual([]);
  });

  it("agrees on 300 strings of random code points", () => {
    const r = rng(22);
    expect(mismatches(model, tok, Array.from({ length: 300 }, () => randomCodePoints(r, 1 + Math.floor(r() * 20))), false)).toEqual([]);
  });
});

describe("llama.cpp with the placeholder vocabulary", () => {
  it.each([260, 300, 1000])("loads vocab size %i and tokenizes like us", async (n) => {
    const meta = placeholderVocabGGUFMetadata(n);
    const model = await load(`placeholder-${n}`, meta);
    const tok = Tokenizer.fromGGUF(meta);
    expect(model.tokens.eos).toBe(tok.eosId);
    const r = rng(n);
    const strings = ["the theory in here", "Hello <|endoftext|> the end", ...Array.from({ length: 100 }, () => randomText(r))];
    expect(mismatches(model, tok, strings, false)).toEqual([]);
    expect(mismatches(model, tok, strings, true)).toEqual([]);
  });
});
