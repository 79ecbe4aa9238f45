/**
 * The embedding table's per-row hashes: a separate object beside plan.json (binary, row after
 * row, the first `bytesPerRow` bytes of sha256(row bytes)), named and hashed as a whole in the
 * plan (`embedding.hashes`). The coordinator reads single rows of token_embd by range, so it
 * needs one hash per row; a whole-tensor hash would mean reading all of it. At the 1.6B shape
 * that is 100352 rows × 16 B = 1.53 MiB, read once per coordinator isolate at load.
 *
 * 16 of sha256's 32 bytes per row: a changed row still matches by chance with probability
 * 2^-128, and the table is half the size. The plan's sha256 of the whole object is what stops a
 * table tampered to match tampered rows.
 */
import { hashPrefix, IntegrityError, sha256Hex } from "../gguf/manifest";

/** Bytes of each row's sha256 kept (edgelm shard-plan's choice; a reader takes the plan's). */
export const ROW_HASH_BYTES = 16;

/** plan.json's `embedding.hashes`: where the row hashes are and what the whole object hashes to. */
export interface EmbeddingHashesRef {
  /** R2 object key (edgelm shard-plan: `<model key>.embedding.hashes`, beside the plan). */
  key: string;
  /** sha256 (hex) of the whole object: a tampered hashes object is refused. */
  sha256: string;
  bytesPerRow: number;
}

/** The first `n` bytes of sha256(row). */
export async function rowDigest(row: Uint8Array, n: number): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", row as Uint8Array<ArrayBuffer>), 0, n);
}

export class RowHashes {
  private constructor(
    private readonly table: Uint8Array,
    readonly bytesPerRow: number,
  ) {}

  /** Row `t`'s expected digest. */
  entry(t: number): Uint8Array {
    return this.table.subarray(t * this.bytesPerRow, (t + 1) * this.bytesPerRow);
  }

  /** The object's bytes, checked against the plan's reference: its shape for `rows` rows and its sha256. */
  static async verify(bytes: Uint8Array, ref: EmbeddingHashesRef, rows: number): Promise<RowHashes> {
    const per = ref.bytesPerRow;
    if (!Number.isInteger(per) || per < 1 || per > 32) throw new IntegrityError(`the plan's embedding.hashes.bytesPerRow must be an integer in 1..32, got ${JSON.stringify(per)}: re-run edgelm shard-plan`);
    if (bytes.length !== rows * per) {
      throw new IntegrityError(`integrity check failed: the embedding hashes "${ref.key}" are ${bytes.length} bytes, the plan expects ${rows} rows × ${per} B = ${rows * per}; the model is not served`);
    }
    const got = await sha256Hex(bytes);
    if (got !== ref.sha256) throw new IntegrityError(`integrity check failed: the embedding hashes "${ref.key}": sha256 ${hashPrefix(got)} does not match the plan's ${hashPrefix(ref.sha256)}; the model is not served`);
    return new RowHashes(bytes, per);
  }
}
