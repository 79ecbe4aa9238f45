/**
 * A Hugging Face `tokenizer.json` (byte-level BPE, as the Stable LM 2 repos ship since Mar 2024)
 * → GGUF `tokenizer.*` metadata the way llama.cpp's `_set_vocab_gpt2` writes it (docs/model.md, Tokenizer metadata).
 * The vocab strings are already in GPT-2 byte-unicode form, so they are copied as they are.
 */
import { bool, i32Array, str, strArray, u32 } from "../src/gguf/metadata";
import type { Metadata } from "../src/gguf/types";

/** llama.cpp token types. */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** tokenizer_config.json writes special tokens as a string or an AddedToken object {content}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  return undefined;
}

export interface HFTokenizerInputs {
  /** Parsed tokenizer.json. */
  tokenizer: unknown;
  /** Parsed tokenizer_config.json, if the repo has one. */
  tokenizerConfig?: unknown;
  /** Embedding rows (config.json vocab_size): the token list is padded to this length. */
  vocabSize: number;
  /** config.json ids, the fallback when tokenizer_config.json names no special token. */
  bosTokenId?: number;
  eosTokenId?: number;
}

export function hfTokenizerGGUFMetadata(inp: HFTokenizerInputs, where = "tokenizer.json"): Metadata {
  const tok = inp.tokenizer;
  if (!isObject(tok) || !isObject(tok.model)) throw new Error(`${where}: no "model" object`);
  const model = tok.model;
  if (model.type !== undefined && model.type !== "BPE") throw new Error(`${where}: model type ${JSON.stringify(model.type)} is not supported (need byte-level BPE)`);
  if (!isObject(model.vocab)) throw new Error(`${where}: model.vocab is not an object`);
  if (!Array.isArray(model.merges)) throw new Error(`${where}: model.merges is not a list`);

  const n = inp.vocabSize;
  const tokens: (string | undefined)[] = new Array(n).fill(undefined);
  const types = new Array<number>(n).fill(NORMAL);
  const place = (id: unknown, content: string, type: number) => {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) throw new Error(`${where}: token ${JSON.stringify(content)} has invalid id ${JSON.stringify(id)}`);
    if (id >= n) throw new Error(`${where}: token ${JSON.stringify(content)} has id ${id}, beyond the model's vocab_size ${n}`);
    tokens[id] = content;
    types[id] = type;
  };
  for (const [content, id] of Object.entries(model.vocab)) place(id, content, NORMAL);

  const byContent = new Map<string, number>();
  for (const [content, id] of Object.entries(model.vocab)) byContent.set(content, id as number);
  const added = Array.isArray(tok.added_tokens) ? tok.added_tokens : [];
  for (const a of added) {
    if (!isObject(a) || typeof a.content !== "string") throw new Error(`${where}: an added_tokens entry has no content`);
    place(a.id, a.content, a.special === true ? CONTROL : USER_DEFINED);
    byContent.set(a.content, a.id as number);
  }

  const filled = tokens.map((t, id) => {
    if (t !== undefined) return t;
    types[id] = UNUSED;
    return `[PAD${id}]`;
  });

  const merges = (model.merges as unknown[]).map((m, i) => {
    if (typeof m === "string" && m.split(" ").length === 2) return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") return `${m[0]} ${m[1]}`;
    throw new Error(`${where}: merge #${i} ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`);
  });

  const cfg = isObject(inp.tokenizerConfig) ? inp.tokenizerConfig : {};
  const special = (key: string, fallback?: number): number | undefined => {
    const content = tokenContent(cfg[`${key}_token`]);
    const id = content === undefined ? undefined : byContent.get(content);
    return id ?? fallback;
  };

  const m: Metadata = new Map();
  m.set("tokenizer.ggml.model", str("gpt2"));
  // Stable LM 2's pre-tokenizer (docs/model.md, Ranks and the split); llama.cpp picks it by a tokenizer fingerprint we do not recompute.
  m.set("tokenizer.ggml.pre", str("stablelm2"));
  m.set("tokenizer.ggml.tokens", strArray(filled));
  m.set("tokenizer.ggml.token_type", i32Array(types));
  m.set("tokenizer.ggml.merges", strArray(merges));
  const ids: [string, number | undefined][] = [
    ["bos_token_id", special("bos", inp.bosTokenId)],
    ["eos_token_id", special("eos", inp.eosTokenId)],
    ["unknown_token_id", special("unk")],
    ["padding_token_id", special("pad")],
  ];
  for (const [k, id] of ids) if (id !== undefined) m.set(`tokenizer.ggml.${k}`, u32(id));
  if (typeof cfg.add_bos_token === "boolean") m.set("tokenizer.ggml.add_bos_token", bool(cfg.add_bos_token));
  if (typeof cfg.add_eos_token === "boolean") m.set("tokenizer.ggml.add_eos_token", bool(cfg.add_eos_token));
  return m;
}

/** `chat_template` from tokenizer_config.json: a string, or a list of named templates (the "default" one). */
export function chatTemplateOf(tokenizerConfig: unknown): string | undefined {
  if (!isObject(tokenizerConfig)) return undefined;
  const t = tokenizerConfig.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => isObject(x) && x.name === "default");
    if (isObject(d) && typeof d.template === "string") return d.template;
  }
  return undefined;
}
