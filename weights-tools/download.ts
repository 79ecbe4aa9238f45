/**
 * Fetches a Stable LM 2 checkpoint's files from the Hugging Face Hub (or any server with the same
 * `/<repo>/resolve/<revision>/<file>` layout, e.g. a mirror or a test server). Files already
 * present are skipped; interrupted downloads resume from their `.part` file with a Range request.
 */
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { hubRequest, networkMessage } from "./hub-request";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

export const KNOWN_MODELS = ["stabilityai/stablelm-2-1_6b", "stabilityai/stablelm-2-zephyr-1_6b"] as const;

export interface DownloadProgress {
  file: string;
  bytes: number;
  /** undefined when the server sent no length. */
  total?: number;
}

export interface DownloadOptions {
  /** "owner/name". */
  model: string;
  dir: string;
  endpoint?: string;
  revision?: string;
  /** Sent as a Bearer token (gated or private repos); defaults to $HF_TOKEN. */
  token?: string;
  onProgress?: (p: DownloadProgress) => void;
  /** Called when a file is skipped or resumed (for a log line). */
  onInfo?: (msg: string) => void;
}

class NotFound extends Error {}

export const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function fileURL(endpoint: string, model: string, revision: string, file: string): string {
  return `${endpoint.replace(/\/+$/, "")}/${model}/resolve/${encodeURIComponent(revision)}/${file.split("/").map(encodeURIComponent).join("/")}`;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/** Downloads one file to dir/file unless it is already there. Throws NotFound on 404. */
async function fetchFile(opts: DownloadOptions, file: string): Promise<void> {
  const dest = join(opts.dir, file);
  if (existsSync(dest)) {
    opts.onInfo?.(`${file}: already present, skipped`);
    return;
  }
  const part = `${dest}.part`;
  const have = (await sizeOf(part)) ?? 0;
  const headers: Record<string, string> = {};
  if (have > 0) headers.range = `bytes=${have}-`;
  const url = fileURL(opts.endpoint ?? DEFAULT_ENDPOINT, opts.model, opts.revision ?? "main", file);
  let res: Response;
  try {
    res = await hubRequest(url, { headers, token: opts.token ?? process.env.HF_TOKEN });
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${networkMessage(e)}`);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new NotFound(`${url}: 404 not found`);
  }
  if (res.status === 416 && have > 0) {
    // The .part already holds the whole file (interrupted just before the rename).
    await res.body?.cancel();
    await rename(part, dest);
    return;
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new Error(`${url}: ${res.status} ${res.statusText} (gated or private repo? set HF_TOKEN)`);
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  }
  // A server that ignores Range answers 200 with the whole file: start over.
  const resumed = res.status === 206 && have > 0;
  if (resumed) opts.onInfo?.(`${file}: resuming at byte ${have}`);
  const length = Number(res.headers.get("content-length") ?? NaN);
  const total = Number.isFinite(length) ? length + (resumed ? have : 0) : undefined;
  let bytes = resumed ? have : 0;
  if (!res.body) throw new Error(`${url}: empty response`);
  const fh = await open(part, resumed ? "a" : "w");
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      for (let done = 0; done < chunk.length; ) done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
      bytes += chunk.length;
      opts.onProgress?.({ file, bytes, total });
    }
  } finally {
    await fh.close();
  }
  if (total !== undefined && bytes !== total) throw new Error(`${url}: got ${bytes} of ${total} bytes (connection dropped? run again to resume)`);
  await rename(part, dest);
}

/** The files a StableLM conversion needs; returns the folder. */
export async function downloadModel(opts: DownloadOptions): Promise<string> {
  if (!REPO_ID.test(opts.model) || opts.model.includes("..")) throw new Error(`model must be "owner/name", got ${JSON.stringify(opts.model)}`);
  await mkdir(opts.dir, { recursive: true });
  const optional = async (file: string) => {
    try {
      await fetchFile(opts, file);
      return true;
    } catch (e) {
      if (e instanceof NotFound) return false;
      throw e;
    }
  };
  await fetchFile(opts, "config.json");
  for (const f of ["generation_config.json", "tokenizer.json", "tokenizer_config.json"]) await optional(f);
  if (await optional("model.safetensors.index.json")) {
    const indexPath = join(opts.dir, "model.safetensors.index.json");
    let index: { weight_map?: Record<string, unknown> };
    try {
      index = JSON.parse(await readFile(indexPath, "utf8"));
    } catch (e) {
      await rm(indexPath, { force: true });
      throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    const shards = new Set(Object.values(index.weight_map ?? {}));
    if (shards.size === 0) throw new Error(`${indexPath}: weight_map names no shards`);
    for (const s of shards) {
      if (typeof s !== "string" || s !== basename(s) || s.startsWith(".")) throw new Error(`${indexPath}: shard ${JSON.stringify(s)} is not a plain file name`);
      await fetchFile(opts, s);
    }
  } else {
    await fetchFile(opts, "model.safetensors");
  }
  return opts.dir;
}
