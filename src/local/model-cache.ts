/**
 * The GGUF's bytes for the engine: from the Cache API when a verified copy of the same URL and
 * ETag is there, else from the network — streamed into the engine and into the cache at once.
 *
 * Why the Cache API (not OPFS): `cache.put` commits an entry only when its body stream has ended
 * cleanly, so a download that breaks or is cut short never becomes an entry (no temporary file and
 * rename of our own to get wrong); it takes and gives back streams, which is what the engine's
 * loader reads; and it exists in dedicated workers of every browser with WASM SIMD. OPFS's
 * random access buys nothing here: the loader reads the file once, front to back.
 *
 * Freshness: one entry per URL, carrying the ETag it was stored with; every load asks the server
 * with If-None-Match (a 304 costs one small round trip, and a changed file is noticed at once).
 * When the server cannot be reached the stored copy is used, so a model works offline.
 */
import type { LocalErrorInfo, Progress } from "./protocol";

export const CACHE_NAME = "edgelm-models-v1";
const ETAG = "x-edgelm-etag";
const SIZE = "x-edgelm-size";

export class LocalLoadError extends Error {
  constructor(readonly info: LocalErrorInfo) {
    super(info.message);
    this.name = "LocalLoadError";
  }
}

export interface ModelBytes {
  /** The file, front to back; errors if the body ends short of the announced length. */
  stream: ReadableStream<Uint8Array>;
  size: number;
  source: "network" | "cache";
  etag: string | null;
  /** Settles once the network copy is stored (or why not); a cut-off body rejects it with `truncated`. */
  stored: Promise<{ cached: boolean; warning?: string }>;
  warnings: string[];
}

export interface OpenOptions {
  cache: boolean;
  onProgress(p: Progress): void;
  /** Sent with the download (never stored): an API key, say. */
  headers?: [string, string][];
  fetch?: typeof fetch;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

export async function openModelBytes(url: string, opts: OpenOptions): Promise<ModelBytes> {
  const doFetch = opts.fetch ?? ((u: string, i?: RequestInit) => fetch(u, i));
  const warnings: string[] = [];
  let cache: Cache | undefined;
  if (opts.cache) {
    try {
      cache = await caches.open(CACHE_NAME);
    } catch (e) {
      // Private windows and insecure (http, not localhost) pages have no Cache API.
      warnings.push(`the model cannot be stored for the next visit: the Cache API is not available here (${(e as Error).message})`);
    }
  }
  const hit = await cache?.match(url);
  const hitETag = hit?.headers.get(ETAG) ?? null;
  const hitSize = Number(hit?.headers.get(SIZE) ?? NaN);

  let res: Response;
  try {
    // no-store: the browser's HTTP cache would keep a second copy of a file of a gigabyte.
    res = await doFetch(url, { cache: "no-store", headers: [...(opts.headers ?? []), ...(hitETag ? [["if-none-match", hitETag] as [string, string]] : [])] });
  } catch (e) {
    if (hit?.body && hitETag) {
      warnings.push(`could not ask ${url} whether the model changed (${(e as Error).message}); using the stored copy`);
      return fromCache(hit.body, hitSize, hitETag, warnings, opts);
    }
    throw new LocalLoadError({ code: "download_failed", message: `could not download the model from ${url}: ${(e as Error).message}` });
  }
  if (res.status === 304 && hit?.body) {
    await res.body?.cancel();
    return fromCache(hit.body, hitSize, hitETag, warnings, opts);
  }
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    throw new LocalLoadError({ code: "download_failed", message: `could not download the model from ${url}: HTTP ${res.status} ${res.statusText}` });
  }
  // A stale copy goes before the new one is written, so both never need room at once.
  if (hit) await cache?.delete(url);

  const etag = res.headers.get("etag");
  const encoding = res.headers.get("content-encoding");
  // A compressed body's Content-Length is not the file's length: it cannot be checked, so it is not stored.
  const announced = encoding && encoding !== "identity" ? NaN : Number(res.headers.get("content-length") ?? NaN);
  const size = Number.isFinite(announced) ? announced : 0;
  let cutShort: LocalLoadError | undefined;
  const body = verified(res.body, size || undefined, "download", opts.onProgress, (e) => (cutShort = e));

  let why: string | undefined;
  if (!cache) why = warnings.length ? undefined : "caching is off";
  else if (!etag) why = `the model is not stored for the next visit: ${url} sent no ETag, so a changed file could not be told from the stored one`;
  else if (!size) why = `the model is not stored for the next visit: ${url} sent no Content-Length${encoding ? ` (Content-Encoding: ${encoding})` : ""}, so a cut-off download could not be told from a whole one`;
  else why = await roomFor(size);
  if (why || !cache) {
    if (why && why !== "caching is off") warnings.push(why);
    return { stream: body, size, source: "network", etag, stored: Promise.resolve({ cached: false }), warnings };
  }

  const [forEngine, forCache] = body.tee();
  const headers = { "content-type": "application/octet-stream", "content-length": String(size), [ETAG]: etag!, [SIZE]: String(size) };
  const stored = cache.put(url, new Response(forCache, { headers })).then(
    () => ({ cached: true }),
    async (e: unknown) => {
      if (e instanceof LocalLoadError) throw e;
      if ((e as Error)?.name === "QuotaExceededError") return { cached: false, warning: await quotaMessage(size) };
      // A cut-off body is the file's fault: nothing may use it. Any other failure is the store's
      // (private windows keep the Cache API in memory and refuse large entries): the engine's
      // copy was read and checked all the same, so only the next visit pays.
      if (cutShort) throw cutShort;
      return { cached: false, warning: `the model was not stored for the next visit: ${(e as Error)?.message ?? e}` };
    },
  );
  return { stream: forEngine, size, source: "network", etag, stored, warnings };
}

function fromCache(body: ReadableStream<Uint8Array>, size: number, etag: string | null, warnings: string[], opts: OpenOptions): ModelBytes {
  return { stream: verified(body, size, "cache", opts.onProgress), size, source: "cache", etag, stored: Promise.resolve({ cached: true }), warnings };
}

/**
 * The body, counted: progress about every 1% and at the end, and an error when it breaks off, ends
 * short of `total` or runs past it — so neither the cache nor the engine takes a partial file for
 * a whole one. A pull stream (not a TransformStream) so the network's own error, too, becomes one
 * that says how far the download got.
 */
function verified(source: ReadableStream<Uint8Array>, total: number | undefined, phase: Progress["phase"], onProgress: (p: Progress) => void, onCut?: (e: LocalLoadError) => void): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let loaded = 0;
  let reported = 0;
  const step = total ? Math.max(1, Math.floor(total / 100)) : 1 << 20;
  const what = phase === "download" ? "download" : "stored copy";
  const cut = (why: string) => {
    const e = new LocalLoadError({ code: "truncated", message: `the model's ${what} ${why}: it is not used or stored` });
    onCut?.(e);
    return e;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        controller.error(cut(`broke off after ${loaded} of ${total ?? "?"} bytes (${(e as Error)?.message ?? e})`));
        return;
      }
      if (r.done) {
        if (total !== undefined && loaded !== total) controller.error(cut(`ended after ${loaded} of ${total} bytes`));
        else {
          onProgress({ phase, loaded, total: total ?? loaded });
          controller.close();
        }
        return;
      }
      loaded += r.value.byteLength;
      if (total !== undefined && loaded > total) {
        controller.error(cut(`ran past its announced ${total} bytes`));
        void reader.cancel().catch(() => {});
        return;
      }
      controller.enqueue(r.value);
      if (loaded - reported >= step && loaded !== total) {
        reported = loaded;
        onProgress({ phase, loaded, total: total ?? 0 });
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Undefined when the origin's quota has room for `size` more bytes (or cannot say), else why not. */
async function roomFor(size: number): Promise<string | undefined> {
  const est = await navigator.storage?.estimate?.().catch(() => undefined);
  if (!est?.quota || est.usage === undefined) return undefined;
  if (est.quota - est.usage >= size) return undefined;
  return quotaMessage(size, est);
}

async function quotaMessage(size: number, est?: StorageEstimate): Promise<string> {
  est ??= await navigator.storage?.estimate?.().catch(() => undefined);
  const room = est?.quota !== undefined && est.usage !== undefined ? ` (this site may store ${mib(est.quota)} and uses ${mib(est.usage)})` : "";
  return `the model (${mib(size)}) was not stored for the next visit: the browser's storage quota is full${room}. Free disk space or clear this site's stored data; until then every visit downloads it again`;
}
