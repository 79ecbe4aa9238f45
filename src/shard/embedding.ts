/**
 * Embedding rows on demand: the coordinator never holds token_embd (116 MB as Q4_0); it reads
 * the rows a request needs by range from the one GGUF, dequantizes them (src/gguf/quant, exact
 * for Q4_0/Q8_0/F16/BF16/F32: the same values the engine's kernels produce) and keeps a bounded
 * LRU of rows per isolate (in the file's bytes). A miss reads its row's aligned block of
 * BLOCK_ROWS rows, consecutive missing blocks in one read, and every read is counted: each is a
 * subrequest of the request that made it.
 *
 * When the plan carries per-row hashes (edgelm shard-plan writes them: ./row-hashes.ts), every
 * row is checked before its first use, before it is dequantized (a row that only came along with
 * its block is checked when a token first needs it); a row that does not match fails the request
 * and is dropped from the cache, so it is never served and is read again next time.
 */
import { dequantize } from "../gguf/quant";
import { hashPrefix, IntegrityError, toHex } from "../gguf/manifest";
import type { EmbeddingRows } from "./engine";
import type { ShardPlan } from "./plan";
import { rowDigest, type RowHashes } from "./row-hashes";

/** Bytes at an absolute offset of the GGUF. */
export type ReadBytes = (offset: number, length: number) => Promise<Uint8Array>;

/**
 * Rows are read in aligned blocks of this many: a miss reads its row's block, and the neighbours
 * come along for the same subrequest. BPE vocabularies give frequent tokens nearby ids, so text
 * keeps hitting blocks already read (measured in docs/sharding.md). 16 rows of Q4_0 at the 1.6B
 * width are 18 KiB per read.
 */
export const BLOCK_ROWS = 16;

export interface RangeEmbeddingOptions {
  /** Rows kept, in the file's bytes (default 8192: 9 MiB of Q4_0 at the 1.6B width). */
  maxRows?: number;
  /** The plan's per-row hashes, already checked against the plan: every row is verified against them before its first use. */
  hashes?: RowHashes;
  /** Told of a row that failed its check (after which the request fails): the host logs it and reports it in /health. */
  onIntegrityFailure?: (err: IntegrityError) => void;
}

export class RangeEmbedding implements EmbeddingRows {
  /** Token → its row's bytes as read (quantized: a few times smaller than f32), least recently used first. */
  private readonly cache = new Map<number, Uint8Array>();
  /** Rows whose hash was checked: a row is checked before its first use, not when it merely came along with its block. */
  private readonly checked = new Set<number>();
  private readonly maxRows: number;
  /** Range reads made (subrequests). */
  reads = 0;
  hits = 0;
  /** Rows checked against the plan's hashes. */
  verified = 0;
  /** The last row that failed its check, for /health; cleared when that row, read again, matches (the file was uploaded again). */
  failure?: { message: string; at: number; token: number };

  constructor(
    private readonly plan: ShardPlan,
    private readonly read: ReadBytes,
    private readonly opts: RangeEmbeddingOptions = {},
  ) {
    this.maxRows = opts.maxRows ?? 8192;
  }

  async rows(tokens: readonly number[]): Promise<Float32Array> {
    const H = this.plan.model.config.hiddenSize;
    const V = this.plan.model.config.vocabSize;
    const { offset, rowBytes, type } = this.plan.embedding;
    const missing = [...new Set(tokens.filter((t) => !this.cache.has(t)).map((t) => Math.floor(t / BLOCK_ROWS)))].sort((a, b) => a - b);
    this.hits += tokens.filter((t) => this.cache.has(t)).length;
    const got = new Map<number, Uint8Array>();
    // Consecutive missing blocks in one read.
    for (let i = 0; i < missing.length; ) {
      let j = i + 1;
      while (j < missing.length && missing[j] === missing[j - 1] + 1) j++;
      const first = missing[i] * BLOCK_ROWS;
      const end = Math.min(V, (missing[j - 1] + 1) * BLOCK_ROWS);
      this.reads++;
      const bytes = await this.read(offset + first * rowBytes, (end - first) * rowBytes);
      for (let t = first; t < end; t++) got.set(t, bytes.slice((t - first) * rowBytes, (t - first + 1) * rowBytes));
      i = j;
    }
    const out = new Float32Array(tokens.length * H);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      const row = got.get(t) ?? this.cache.get(t)!;
      if (this.opts.hashes && !this.checked.has(t)) {
        // A row that does not match is never cached: the next use reads it again.
        const bad = await this.mismatch(t, row, this.opts.hashes);
        if (bad) {
          this.cache.delete(t);
          got.delete(t);
          this.keep(got);
          throw this.refuse(t, bad);
        }
        this.checked.add(t);
      }
      out.set(dequantize(type, row, H), i * H);
    }
    this.keep(got);
    for (const t of tokens) {
      const row = this.cache.get(t);
      if (!row) continue;
      this.cache.delete(t); // re-insert: the map's order is recency
      this.cache.set(t, row);
    }
    return out;
  }

  /** Rows just read join the cache; the least recently used beyond maxRows leave it (and must be checked again when read again). */
  private keep(rows: Map<number, Uint8Array>): void {
    for (const [t, row] of rows) if (!this.cache.has(t)) this.cache.set(t, row);
    while (this.cache.size > this.maxRows) {
      const t = this.cache.keys().next().value!;
      this.cache.delete(t);
      this.checked.delete(t);
    }
  }

  /** The row's digest when it does not match the plan's; undefined when it does. */
  private async mismatch(token: number, row: Uint8Array, hashes: RowHashes): Promise<Uint8Array | undefined> {
    const want = hashes.entry(token);
    const got = await rowDigest(row, want.length);
    this.verified++;
    if (!got.every((b, i) => b === want[i])) return got;
    if (this.failure?.token === token) this.failure = undefined;
    return undefined;
  }

  private refuse(token: number, got: Uint8Array): IntegrityError {
    const want = this.opts.hashes!.entry(token);
    const { name, offset, rowBytes } = this.plan.embedding;
    const err = new IntegrityError(
      `integrity check failed: embedding row ${token} (token id ${token}) of ${name} (${rowBytes} bytes at ${offset + token * rowBytes}): ` +
        `sha256 ${hashPrefix(toHex(got))} does not match the plan's ${hashPrefix(toHex(want))}; the row is not served`,
    );
    this.failure = { message: err.message, at: Date.now(), token };
    this.opts.onIntegrityFailure?.(err);
    return err;
  }
}
