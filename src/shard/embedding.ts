/**
 * Embedding rows on demand: the coordinator never holds token_embd (116 MB as Q4_0); it reads
 * the rows a request needs by range from the one GGUF, dequantizes them (src/gguf/quant, exact
 * for Q4_0/Q8_0/F16/BF16/F32: the same values the engine's kernels produce) and keeps a bounded
 * LRU of rows per isolate. Rows that lie close together in the file are fetched by one read, and
 * every read is counted: each is a subrequest of the request that made it.
 *
 * When the plan carries per-row hashes (edgelm shard-plan writes them: ./row-hashes.ts), every
 * row is checked as it is read, before it is dequantized; a row that does not match fails the
 * request and is never cached, so it is never served. A cached row was checked when it was read.
 */
import { dequantize } from "../gguf/quant";
import { hashPrefix, IntegrityError, toHex } from "../gguf/manifest";
import type { EmbeddingRows } from "./engine";
import type { ShardPlan } from "./plan";
import { rowDigest, type RowHashes } from "./row-hashes";

/** Bytes at an absolute offset of the GGUF. */
export type ReadBytes = (offset: number, length: number) => Promise<Uint8Array>;

/** Two missing rows at most this far apart (in rows) are fetched by one read, the rows between included. */
const COALESCE_ROWS = 8;

export interface RangeEmbeddingOptions {
  /** Rows kept (default 1024: 8 MiB of f32 at the 1.6B width). */
  maxRows?: number;
  /** The plan's per-row hashes, already checked against the plan: every row read is verified against them. */
  hashes?: RowHashes;
  /** Told of a row that failed its check (after which the request fails): the host logs it and reports it in /health. */
  onIntegrityFailure?: (err: IntegrityError) => void;
}

export class RangeEmbedding implements EmbeddingRows {
  private readonly cache = new Map<number, Float32Array>();
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
    this.maxRows = opts.maxRows ?? 1024;
  }

  async rows(tokens: readonly number[]): Promise<Float32Array> {
    const H = this.plan.model.config.hiddenSize;
    const missing = [...new Set(tokens.filter((t) => !this.cache.has(t)))].sort((a, b) => a - b);
    this.hits += tokens.length - missing.length;
    const fetched = new Map<number, Float32Array>();
    for (let i = 0; i < missing.length; ) {
      let j = i + 1;
      while (j < missing.length && missing[j] - missing[j - 1] <= COALESCE_ROWS) j++;
      const first = missing[i];
      const last = missing[j - 1];
      const { offset, rowBytes, type } = this.plan.embedding;
      this.reads++;
      const bytes = await this.read(offset + first * rowBytes, (last - first + 1) * rowBytes);
      for (let k = i; k < j; k++) {
        const t = missing[k];
        const row = bytes.subarray((t - first) * rowBytes, (t - first + 1) * rowBytes);
        if (this.opts.hashes) await this.check(t, row, this.opts.hashes);
        fetched.set(t, dequantize(type, row, H));
      }
      i = j;
    }
    const out = new Float32Array(tokens.length * H);
    tokens.forEach((t, i) => {
      const row = fetched.get(t) ?? this.cache.get(t)!;
      out.set(row, i * H);
      this.cache.delete(t); // re-insert: the map's order is recency
      this.cache.set(t, row);
    });
    while (this.cache.size > this.maxRows) this.cache.delete(this.cache.keys().next().value!);
    return out;
  }

  private async check(token: number, row: Uint8Array, hashes: RowHashes): Promise<void> {
    const want = hashes.entry(token);
    const got = await rowDigest(row, want.length);
    this.verified++;
    if (got.every((b, i) => b === want[i])) {
      if (this.failure?.token === token) this.failure = undefined;
      return;
    }
    const { name, offset, rowBytes } = this.plan.embedding;
    const err = new IntegrityError(
      `integrity check failed: embedding row ${token} (token id ${token}) of ${name} (${rowBytes} bytes at ${offset + token * rowBytes}): ` +
        `sha256 ${hashPrefix(toHex(got))} does not match the plan's ${hashPrefix(toHex(want))}; the row is not served`,
    );
    this.failure = { message: err.message, at: Date.now(), token };
    this.opts.onIntegrityFailure?.(err);
    throw err;
  }
}
