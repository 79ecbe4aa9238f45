/**
 * Arcade100k byte-level BPE (docs/model.md, Tokenizer): one encoder, whichever way it is built — built in from the
 * cl100k_base ranks, from GGUF tokenizer metadata, or from a HF tokenizer.json.
 *
 * Specials policy: special-token strings in text are ordinary text unless the caller passes
 * `allowSpecial: true`; chat templates insert specials as ids. Non-special added tokens
 * (USER_DEFINED) are always split out, as HF and llama.cpp do.
 */
import type { Metadata, MetaValue } from "../gguf/types";
import { binaryToBytes, utf8Binary, wellFormed } from "./binary";
import { binaryToUnicodeToken, unicodeTokenToBinary } from "./byte-unicode";
import { bpeBoundaries, type MergeTable } from "./bpe";
import { arcadeSplitRegex } from "./pretokenize";
import { cl100kRankText, parseTiktokenRanks } from "./ranks";
import { ARCADE_RANK_COUNT, ARCADE_SPECIAL_START, ARCADE_SPECIAL_TOKENS, ARCADE_VOCAB_SIZE, ENDOFTEXT_ID } from "./specials";

/** llama.cpp token types (GGUF `tokenizer.ggml.token_type`). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface EncodeOptions {
  /** Parse control tokens (e.g. `<|endoftext|>`) in the text as their ids. Default false: plain text. */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out control tokens (ids ≥ 100257 for Arcade100k). Default false. */
  skipSpecial?: boolean;
}

interface Parts {
  /** Bytes of each id as a binary string; undefined for ids with no token (padding). */
  bytes: (string | undefined)[];
  types: Uint8Array;
  table: MergeTable;
  /** Ordinary tokens' bytes → id. */
  pieceId: Map<string, number>;
  /** tiktoken semantics: a pre-token that is itself a token maps to it without merging. */
  wholePiece: boolean;
  bosId: number | undefined;
  eosId: number | undefined;
}

const CACHE_LIMIT = 1 << 16;
const CACHE_MAX_PIECE = 48;

let builtin: Tokenizer | undefined;
let builtinRanks: string[] | undefined;

/** cl100k_base ranks as binary strings (index = rank = id), parsed once. */
export function arcade100kRanks(): string[] {
  if (!builtinRanks) {
    const ranks = parseTiktokenRanks(cl100kRankText());
    if (ranks.length !== ARCADE_RANK_COUNT) throw new Error(`cl100k_base rank file has ${ranks.length} ranks, expected ${ARCADE_RANK_COUNT}`);
    builtinRanks = ranks;
  }
  return builtinRanks;
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  private readonly bytes: (string | undefined)[];
  private readonly types: Uint8Array;
  private readonly table: MergeTable;
  private readonly pieceId: Map<string, number>;
  private readonly wholePiece: boolean;
  private readonly specialIds = new Map<string, number>();
  /** Splits out control + user-defined tokens (allowSpecial) / user-defined only (default). */
  private readonly splitAll: RegExp | undefined;
  private readonly splitUser: RegExp | undefined;
  private readonly cache = new Map<string, number | number[]>();
  private readonly splitter = arcadeSplitRegex();

  private constructor(p: Parts) {
    this.bytes = p.bytes;
    this.types = p.types;
    this.table = p.table;
    this.pieceId = p.pieceId;
    this.wholePiece = p.wholePiece;
    this.vocabSize = p.bytes.length;
    this.bosId = p.bosId;
    this.eosId = p.eosId;
    const all: string[] = [];
    const user: string[] = [];
    for (let id = 0; id < this.vocabSize; id++) {
      const t = this.types[id];
      if (t !== TokenType.CONTROL && t !== TokenType.USER_DEFINED) continue;
      const text = new TextDecoder().decode(binaryToBytes(this.bytes[id] ?? ""));
      if (text === "") continue;
      if (!this.specialIds.has(text)) this.specialIds.set(text, id);
      all.push(text);
      if (t === TokenType.USER_DEFINED) user.push(text);
    }
    this.splitAll = alternation(all);
    this.splitUser = alternation(user);
  }

  /** The built-in Arcade100k tokenizer (cl100k_base ranks + 32 specials, vocab 100352), cached. */
  static arcade100k(): Tokenizer {
    if (!builtin) {
      const ranks = arcade100kRanks();
      const bytes: (string | undefined)[] = new Array(ARCADE_VOCAB_SIZE).fill(undefined);
      const types = new Uint8Array(ARCADE_VOCAB_SIZE).fill(TokenType.UNUSED);
      const pieceId = new Map<string, number>();
      for (let r = 0; r < ranks.length; r++) {
        bytes[r] = ranks[r];
        types[r] = TokenType.NORMAL;
        pieceId.set(ranks[r], r);
      }
      ARCADE_SPECIAL_TOKENS.forEach((s, i) => {
        bytes[ARCADE_SPECIAL_START + i] = utf8Binary(s);
        types[ARCADE_SPECIAL_START + i] = TokenType.CONTROL;
      });
      // Rank order is merge priority, so the id map doubles as the pair table.
      builtin = new Tokenizer({ bytes, types, table: { pairRank: pieceId }, pieceId, wholePiece: true, bosId: ENDOFTEXT_ID, eosId: ENDOFTEXT_ID });
    }
    return builtin;
  }

  /** From GGUF metadata (`tokenizer.ggml.*`, model gpt2, pre stablelm2/qwen2). */
  static fromGGUF(meta: Metadata): Tokenizer {
    const model = metaString(meta, "tokenizer.ggml.model");
    if (model !== "gpt2") throw new Error(`unsupported tokenizer.ggml.model "${model}" (only gpt2 byte-level BPE)`);
    const pre = meta.has("tokenizer.ggml.pre") ? metaString(meta, "tokenizer.ggml.pre") : "stablelm2";
    // Both use the Arcade split; any other pre-tokenizer would silently give wrong ids.
    if (pre !== "stablelm2" && pre !== "qwen2") throw new Error(`unsupported tokenizer.ggml.pre "${pre}" (only the stablelm2/qwen2 split is implemented)`);
    const tokens = metaStrings(meta, "tokenizer.ggml.tokens");
    const merges = metaStrings(meta, "tokenizer.ggml.merges");
    let types: number[] | undefined;
    if (meta.has("tokenizer.ggml.token_type")) {
      const v = meta.get("tokenizer.ggml.token_type")!;
      if (v.type !== 9 || !v.value.every((x) => typeof x === "number")) throw new Error("tokenizer.ggml.token_type must be an integer array");
      types = v.value as number[];
      if (types.length !== tokens.length) throw new Error(`tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
    }
    return Tokenizer.fromMergeList(tokens, types, merges, metaInt(meta, "tokenizer.ggml.bos_token_id"), metaInt(meta, "tokenizer.ggml.eos_token_id"));
  }

  /**
   * From a HF `tokenizer.json` (model BPE, byte-level). The pre-tokenizer section is not interpreted:
   * the Arcade split is always used. `vocabSize` pads to the model's row count (100352).
   */
  static fromHFTokenizerJson(json: unknown, opts: { vocabSize?: number } = {}): Tokenizer {
    const j = json as { model?: { type?: string; vocab?: Record<string, number>; merges?: unknown[] }; added_tokens?: { id: number; content: string; special?: boolean }[] };
    if (!j || typeof j !== "object" || !j.model || typeof j.model.vocab !== "object" || !Array.isArray(j.model.merges)) {
      throw new Error("tokenizer.json: expected model.vocab and model.merges");
    }
    if (j.model.type !== undefined && j.model.type !== "BPE") throw new Error(`tokenizer.json: unsupported model type "${j.model.type}"`);
    const entries: [string, number, number][] = Object.entries(j.model.vocab).map(([t, id]) => [t, id, TokenType.NORMAL]);
    for (const a of j.added_tokens ?? []) entries.push([a.content, a.id, a.special === false ? TokenType.USER_DEFINED : TokenType.CONTROL]);
    let size = opts.vocabSize ?? 0;
    for (const [, id] of entries) {
      if (!Number.isInteger(id) || id < 0) throw new Error(`tokenizer.json: bad token id ${id}`);
      size = Math.max(size, id + 1);
    }
    const tokens: string[] = new Array(size);
    const types: number[] = new Array(size).fill(TokenType.UNUSED);
    for (let i = 0; i < size; i++) tokens[i] = `[PAD${i}]`;
    for (const [t, id, type] of entries) {
      tokens[id] = t;
      types[id] = type;
    }
    const merges = j.model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : String(m)));
    const eot = entries.find(([t]) => t === "<|endoftext|>")?.[1];
    return Tokenizer.fromMergeList(tokens, types, merges, eot, eot);
  }

  /** Tokens in GPT-2 byte-unicode form (added tokens verbatim), merges "left right" in priority order. */
  static fromMergeList(tokens: string[], types: number[] | undefined, merges: string[], bosId?: number, eosId?: number): Tokenizer {
    const n = tokens.length;
    const bytes: (string | undefined)[] = new Array(n).fill(undefined);
    const typeArr = new Uint8Array(n);
    const pieceId = new Map<string, number>();
    for (let id = 0; id < n; id++) {
      const t = types ? types[id] : TokenType.NORMAL;
      typeArr[id] = t;
      if (t === TokenType.UNUSED) continue;
      if (t === TokenType.CONTROL || t === TokenType.USER_DEFINED) {
        bytes[id] = utf8Binary(tokens[id]);
        continue;
      }
      const b = unicodeTokenToBinary(tokens[id]);
      if (b === undefined || b === "") throw new Error(`token ${id} ${JSON.stringify(tokens[id])} is not in GPT-2 byte-unicode form`);
      bytes[id] = b;
      if (!pieceId.has(b)) pieceId.set(b, id);
    }
    const pairRank = new Map<string, number>();
    const leftLen = new Int32Array(merges.length);
    merges.forEach((m, i) => {
      const sp = m.indexOf(" ");
      const l = sp > 0 ? unicodeTokenToBinary(m.slice(0, sp)) : undefined;
      const r = sp > 0 && !m.includes(" ", sp + 1) ? unicodeTokenToBinary(m.slice(sp + 1)) : undefined;
      if (l === undefined || r === undefined || r === "") throw new Error(`merge ${i} ${JSON.stringify(m)} is not "left right"`);
      if (!pieceId.has(l + r)) throw new Error(`merge ${i} ${JSON.stringify(m)} produces no token of the vocabulary`);
      leftLen[i] = l.length;
      // A byte string reachable by two merges keeps the higher-priority one.
      if (!pairRank.has(l + r)) pairRank.set(l + r, i);
    });
    for (const id of [bosId, eosId]) {
      if (id !== undefined && (id < 0 || id >= n)) throw new Error(`bos/eos id ${id} outside the vocabulary (size ${n})`);
    }
    return new Tokenizer({ bytes, types: typeArr, table: { pairRank, leftLen }, pieceId, wholePiece: false, bosId, eosId });
  }

  /** Token ids of `text`; no BOS is added (docs/model.md, No BOS). Lone surrogates encode as U+FFFD (like TextEncoder). */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: text must be a string, got ${typeof text}`);
    const s = wellFormed(text);
    const out: number[] = [];
    const re = opts.allowSpecial ? this.splitAll : this.splitUser;
    if (!re) {
      this.encodeOrdinary(s, out);
      return out;
    }
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(s); m !== null; m = re.exec(s)) {
      if (m.index > last) this.encodeOrdinary(s.slice(last, m.index), out);
      out.push(this.specialIds.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last < s.length) this.encodeOrdinary(s.slice(last), out);
    return out;
  }

  /** Forgets memoised pre-token encodings (benchmarks measure the cold path with it). */
  clearCache(): void {
    this.cache.clear();
  }

  /** Id of a control or user-defined token by its text, e.g. "<|im_start|>". */
  specialId(text: string): number | undefined {
    return this.specialIds.get(text);
  }

  isSpecial(id: number): boolean {
    return this.types[id] === TokenType.CONTROL;
  }

  tokenType(id: number): number | undefined {
    return this.checkedId(id, false) ? this.types[id] : undefined;
  }

  tokenBytes(id: number): Uint8Array | undefined {
    if (!this.checkedId(id, false)) return undefined;
    const b = this.bytes[id];
    return b === undefined ? undefined : binaryToBytes(b);
  }

  /** Bytes of a token as a binary string (one char per byte); undefined if it has none. */
  tokenBinary(id: number): string | undefined {
    return this.checkedId(id, false) ? this.bytes[id] : undefined;
  }

  /** Concatenated token bytes. Ids with no token (padding) contribute nothing; out-of-range ids throw. */
  decodeBytes(ids: ArrayLike<number>, opts: DecodeOptions = {}): Uint8Array {
    let len = 0;
    for (let i = 0; i < ids.length; i++) {
      this.checkedId(ids[i], true);
      if (opts.skipSpecial && this.types[ids[i]] === TokenType.CONTROL) continue;
      len += this.bytes[ids[i]]?.length ?? 0;
    }
    const out = new Uint8Array(len);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      if (opts.skipSpecial && this.types[ids[i]] === TokenType.CONTROL) continue;
      const b = this.bytes[ids[i]];
      if (b === undefined) continue;
      binaryToBytes(b, out, at);
      at += b.length;
    }
    return out;
  }

  /** Text of the ids; invalid UTF-8 becomes U+FFFD as in HF decode (non-fatal, BOM kept). */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(this.decodeBytes(ids, opts));
  }

  /** Token `id` in GGUF / tokenizer.json form (byte-unicode for ordinary tokens). */
  tokenString(id: number): string | undefined {
    const b = this.tokenBinary(id);
    if (b === undefined) return undefined;
    const t = this.types[id];
    if (t === TokenType.CONTROL || t === TokenType.USER_DEFINED) return new TextDecoder().decode(binaryToBytes(b));
    return binaryToUnicodeToken(b);
  }

  private checkedId(id: number, strict: boolean): boolean {
    if (Number.isInteger(id) && id >= 0 && id < this.vocabSize) return true;
    if (strict) throw new RangeError(`token id ${id} is out of range (vocabulary has ids 0..${this.vocabSize - 1})`);
    return false;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    const re = this.splitter;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const piece = m[0];
      const hit = this.cache.get(piece);
      if (hit !== undefined) {
        if (typeof hit === "number") out.push(hit);
        else for (const id of hit) out.push(id);
        continue;
      }
      const ids = this.encodePiece(utf8Binary(piece));
      if (piece.length <= CACHE_MAX_PIECE) {
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids.length === 1 ? ids[0] : ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  private encodePiece(bin: string): number[] {
    if (this.wholePiece) {
      const id = this.pieceId.get(bin);
      if (id !== undefined) return [id];
    }
    const b = bpeBoundaries(bin, this.table);
    const ids: number[] = new Array(b.length - 1);
    for (let i = 0; i + 1 < b.length; i++) {
      const part = bin.substring(b[i], b[i + 1]);
      const id = this.pieceId.get(part);
      if (id === undefined) {
        throw new Error(`no token for bytes ${[...part].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ")} (vocabulary lacks a byte token)`);
      }
      ids[i] = id;
    }
    return ids;
  }
}

function alternation(texts: string[]): RegExp | undefined {
  if (texts.length === 0) return undefined;
  // Longest first so a token that is a prefix of another cannot shadow it.
  const sorted = [...new Set(texts)].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map((t) => t.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|"), "gu");
}

function metaString(meta: Metadata, key: string): string {
  const v = meta.get(key);
  if (!v) throw new Error(`GGUF metadata lacks ${key}`);
  if (v.type !== 8) throw new Error(`GGUF metadata ${key} must be a string`);
  return v.value;
}

function metaStrings(meta: Metadata, key: string): string[] {
  const v: MetaValue | undefined = meta.get(key);
  if (!v) throw new Error(`GGUF metadata lacks ${key}`);
  if (v.type !== 9 || v.itemType !== 8) throw new Error(`GGUF metadata ${key} must be a string array`);
  return v.value as string[];
}

function metaInt(meta: Metadata, key: string): number | undefined {
  const v = meta.get(key);
  if (!v) return undefined;
  if (typeof v.value === "number" && Number.isInteger(v.value)) return v.value;
  if (typeof v.value === "bigint") return Number(v.value);
  throw new Error(`GGUF metadata ${key} must be an integer`);
}
