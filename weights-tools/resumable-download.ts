/**
 * One large file fetched into `<part>` and hashed on the way: resumed with Range when a part is
 * already there, retried with backoff when the connection drops, restarted when the server's copy
 * changed. The caller checks the hash and renames; this file never names the finished file.
 *
 * Beside the part, `<part>.json` records which content the part holds (the expected sha256) and
 * the server's ETag, so a later run resumes only onto the same bytes: another sha256 means
 * another file and the part is dropped; the ETag goes out as If-Range, and a server whose copy
 * changed answers 200 with the whole file, which restarts the part.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { hubRequest, networkMessage } from "./hub-request";

/** How hard to try, and what to tell the user: the knobs a caller passes through. */
export interface RetryOptions {
  /** Failed attempts in a row (no byte gained) before giving up; default 5. */
  retries?: number;
  /** First backoff; doubled per failure in a row, at most 30 s. Default 1000 ms. */
  retryDelayMs?: number;
  /** A body that sends nothing for this long is dropped and retried. Default 60 s. */
  idleTimeoutMs?: number;
  onProgress?: (bytes: number, total: number | undefined) => void;
  onInfo?: (msg: string) => void;
}

export interface ResumableDownload extends RetryOptions {
  url: string;
  /** The partial file; `<part>.json` goes beside it. */
  part: string;
  /** The content the part must end up holding (recorded beside the part). */
  sha256: string;
  /** Expected length, when known: a body that ends short is retried, not accepted. */
  size?: number;
  token?: string;
}

export interface DownloadedPart {
  sha256: string;
  bytes: number;
}

interface PartRecord {
  sha256: string;
  etag?: string;
}

/** A problem worth another attempt (dropped connection, 5xx, short body). */
class Transient extends Error {}

export const partRecordPath = (part: string) => `${part}.json`;

async function readRecord(part: string): Promise<PartRecord | undefined> {
  try {
    const r = JSON.parse(await readFile(partRecordPath(part), "utf8")) as PartRecord;
    return typeof r?.sha256 === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/** If-Range needs a strong validator (RFC 9110): a weak ETag cannot say the bytes are the same. */
function strongETag(etag: string | null): string | undefined {
  return etag && !etag.startsWith("W/") ? etag : undefined;
}

/** `bytes START-END/TOTAL` → START, or undefined. */
function rangeStart(contentRange: string | null): number | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(contentRange?.trim() ?? "");
  return m ? Number(m[1]) : undefined;
}

export async function downloadPart(d: ResumableDownload): Promise<DownloadedPart> {
  const retries = d.retries ?? 5;
  const baseDelay = d.retryDelayMs ?? 1000;
  const idleMs = d.idleTimeoutMs ?? 60_000;
  const info = d.onInfo ?? (() => {});
  const record = await readRecord(d.part);
  let have = await sizeOf(d.part);
  let etag = record?.sha256 === d.sha256 ? record.etag : undefined;
  if (have > 0 && record && record.sha256 !== d.sha256) {
    info(`${d.part} holds another version of the file (sha256 ${record.sha256.slice(0, 12)}…): starting over`);
    have = 0;
  } else if (have > 0 && d.size !== undefined && have > d.size) {
    info(`${d.part} is longer than the file (${have} > ${d.size} bytes): starting over`);
    have = 0;
  }
  let hash = createHash("sha256");
  if (have > 0) {
    info(`resuming at byte ${have}${d.size ? ` of ${d.size}` : ""} (hashing the part first)`);
    await hashFile(d.part, hash);
  }
  const fh = await open(d.part, have > 0 ? "r+" : "w");
  try {
    const restart = async (why: string) => {
      info(`${why}: starting over`);
      await fh.truncate(0);
      hash = createHash("sha256");
      have = 0;
      etag = undefined;
    };
    let failures = 0;
    for (;;) {
      if (d.size !== undefined && have === d.size) break;
      const before = have;
      try {
        const done = await attempt();
        if (done) break;
      } catch (e) {
        if (!(e instanceof Transient)) throw e;
        failures = have > before ? 1 : failures + 1;
        if (failures > retries) throw new Error(`${d.url}: ${e.message}; gave up after ${retries} retries at byte ${have}${d.size ? ` of ${d.size}` : ""} (run the same command again to resume)`);
        const wait = Math.min(30_000, baseDelay * 2 ** (failures - 1));
        info(`${e.message}; retry ${failures} of ${retries} in ${(wait / 1000).toFixed(1)} s from byte ${have}`);
        await new Promise((ok) => setTimeout(ok, wait));
      }
    }
    await fh.sync();
    return { sha256: hash.digest("hex"), bytes: have };

    /** One request; true when the part is complete. Throws Transient for what a retry may fix. */
    async function attempt(): Promise<boolean> {
      const headers: Record<string, string> = {};
      if (have > 0) {
        headers.range = `bytes=${have}-`;
        if (etag) headers["if-range"] = etag;
      }
      const abort = new AbortController();
      let res: Response;
      try {
        res = await hubRequest(d.url, { headers, token: d.token, signal: abort.signal });
      } catch (e) {
        throw new Transient(`cannot fetch: ${networkMessage(e)}`);
      }
      if (res.status === 416 && have > 0) {
        await res.body?.cancel();
        // Nothing left to send: the part is whole (an earlier run stopped just before the rename),
        // unless the size says otherwise.
        if (d.size === undefined || have === d.size) return true;
        await restart(`the server refused the range at byte ${have}`);
        throw new Transient("range not satisfiable");
      }
      if (res.status === 429 || res.status >= 500) {
        await res.body?.cancel();
        throw new Transient(`HTTP ${res.status}`);
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw new Error(`${d.url}: HTTP ${res.status} (gated or private repo? accept its licence on the Hub and set HF_TOKEN)`);
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        throw new Error(`${d.url}: HTTP ${res.status} ${res.statusText}`);
      }
      if (res.status === 200 && have > 0) await restart(headers["if-range"] ? "the server's copy changed (If-Range)" : "the server ignored the range");
      if (res.status === 206 && rangeStart(res.headers.get("content-range")) !== have) {
        await res.body?.cancel();
        await restart(`the server answered a range other than bytes=${have}- (${res.headers.get("content-range")})`);
        throw new Transient("wrong range");
      }
      etag = strongETag(res.headers.get("etag"));
      await writeFile(partRecordPath(d.part), JSON.stringify({ sha256: d.sha256, etag } satisfies PartRecord));
      const length = Number(res.headers.get("content-length") ?? NaN);
      const end = Number.isFinite(length) ? have + length : d.size;
      if (!res.body) throw new Transient("empty response");
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => abort.abort(), idleMs);
      };
      try {
        arm();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          arm();
          await writeAt(fh, chunk, have);
          hash.update(chunk);
          have += chunk.length;
          d.onProgress?.(have, d.size ?? end);
        }
      } catch (e) {
        throw new Transient(abort.signal.aborted ? `no data for ${idleMs / 1000} s` : `connection dropped (${networkMessage(e)})`);
      } finally {
        clearTimeout(idle);
      }
      if (end !== undefined && have < end) throw new Transient(`the body ended at byte ${have} of ${end}`);
      return true;
    }
  } finally {
    await fh.close();
  }
}

async function writeAt(fh: FileHandle, chunk: Uint8Array, pos: number): Promise<void> {
  for (let done = 0; done < chunk.length; ) done += (await fh.write(chunk, done, chunk.length - done, pos + done)).bytesWritten;
}

/** Removes a part and its record (after a failed check, or once the file is in place). */
export async function removePart(part: string): Promise<void> {
  await rm(part, { force: true });
  await rm(partRecordPath(part), { force: true });
}
