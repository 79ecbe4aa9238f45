/**
 * Where the GGUF comes from: a folder binding (MODEL_FILES, local development with Miniflare) when
 * present, else the R2 bucket (MODELS). Either way one streamed read of the whole object, plus a
 * cheap look at which version of the object is there now (so a loader can tell a replaced file).
 */
import type { Env } from "./env";

export interface ModelObject {
  body: ReadableStream<Uint8Array>;
  /** Bytes, when the source says (R2 always does). */
  size?: number;
  /** For /health and logs. */
  source: "r2" | "files";
  /** Which upload this is (see objectVersion); undefined when the source cannot tell. */
  version?: string;
}

/**
 * The object is not there, or the storage could not be reached or read: the same request may
 * succeed later without anyone touching the file, so a loader retries it.
 */
export class ObjectUnavailableError extends Error {
  override name = "ObjectUnavailableError";
}

/** The R2 object fields that identify one upload. */
interface R2Version {
  etag?: string;
  uploaded?: Date;
  size: number;
}

const r2Version = (o: R2Version): string => `${o.etag ?? "-"}@${o.uploaded?.toISOString() ?? "-"}/${o.size}`;
const filesVersion = (h: Headers): string | undefined => {
  const tag = h.get("etag") ?? h.get("last-modified");
  return tag === null ? undefined : `${tag}/${h.get("content-length") ?? "-"}`;
};
const filesUrl = (key: string) => `http://model-files/${key.split("/").map(encodeURIComponent).join("/")}`;

/** Storage calls that throw (network, R2 internal errors) are a reason to retry, not a bad file. */
async function reach<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new ObjectUnavailableError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

export async function openModelObject(env: Env, key: string): Promise<ModelObject> {
  const obj = await openObjectIfAny(env, key);
  if (obj) return obj;
  if (env.MODEL_FILES) throw new ObjectUnavailableError(`the model file "${key}" is not in the MODEL_FILES folder binding`);
  throw new ObjectUnavailableError(`the object "${key}" is not in the R2 bucket bound as MODELS; upload it with: wrangler r2 object put <bucket>/${key} --file <model.gguf> (see docs/worker.md)`);
}

/** The object, or null when it is not there (an optional one: the model's manifest). */
export async function openObjectIfAny(env: Env, key: string): Promise<ModelObject | null> {
  if (env.MODEL_FILES) {
    const files = env.MODEL_FILES;
    // The host part is ignored by service bindings; the path is the key.
    const res = await reach(`fetching "${key}" from MODEL_FILES`, () => files.fetch(filesUrl(key)));
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok || !res.body) throw new ObjectUnavailableError(`MODEL_FILES answered ${res.status} for "${key}"`);
    const length = Number(res.headers.get("content-length") ?? NaN);
    return { body: res.body, size: Number.isFinite(length) ? length : undefined, source: "files", version: filesVersion(res.headers) };
  }
  if (!env.MODELS) throw new Error("no model source: bind an R2 bucket as MODELS (wrangler.toml [[r2_buckets]]) or a folder as MODEL_FILES");
  const bucket = env.MODELS;
  const obj = await reach(`reading "${key}" from R2`, () => bucket.get(key));
  return obj ? { body: obj.body, size: obj.size, source: "r2", version: r2Version(obj) } : null;
}

/**
 * Which upload of `key` is there now, without reading it: null when there is none. A loader that
 * found a file invalid tries again only once this differs from the version it read.
 */
export async function objectVersion(env: Env, key: string): Promise<string | null> {
  if (env.MODEL_FILES) {
    const files = env.MODEL_FILES;
    const res = await reach(`looking up "${key}" in MODEL_FILES`, () => files.fetch(filesUrl(key), { method: "HEAD" }));
    await res.body?.cancel();
    return res.ok ? (filesVersion(res.headers) ?? null) : null;
  }
  if (!env.MODELS) return null;
  const bucket = env.MODELS;
  const head = await reach(`looking up "${key}" in R2`, () => bucket.head(key));
  return head ? r2Version(head) : null;
}
