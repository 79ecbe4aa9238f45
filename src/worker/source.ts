/**
 * Where the GGUF comes from: a folder binding (MODEL_FILES, local development with Miniflare) when
 * present, else the R2 bucket (MODELS). Either way one streamed read of the whole object.
 */
import type { Env } from "./env";

export interface ModelObject {
  body: ReadableStream<Uint8Array>;
  /** Bytes, when the source says (R2 always does). */
  size?: number;
  /** For /health and logs. */
  source: "r2" | "files";
}

export async function openModelObject(env: Env, key: string): Promise<ModelObject> {
  if (env.MODEL_FILES) {
    // The host part is ignored by service bindings; the path is the key.
    const res = await env.MODEL_FILES.fetch(`http://model-files/${key.split("/").map(encodeURIComponent).join("/")}`);
    if (res.status === 404) throw new Error(`the model file "${key}" is not in the MODEL_FILES folder binding`);
    if (!res.ok || !res.body) throw new Error(`MODEL_FILES answered ${res.status} for "${key}"`);
    const length = Number(res.headers.get("content-length") ?? NaN);
    return { body: res.body, size: Number.isFinite(length) ? length : undefined, source: "files" };
  }
  if (!env.MODELS) throw new Error("no model source: bind an R2 bucket as MODELS (wrangler.toml [[r2_buckets]]) or a folder as MODEL_FILES");
  const obj = await env.MODELS.get(key);
  if (!obj) {
    throw new Error(`the object "${key}" is not in the R2 bucket bound as MODELS; upload it with: wrangler r2 object put <bucket>/${key} --file <model.gguf> (see docs/worker.md)`);
  }
  return { body: obj.body, size: obj.size, source: "r2" };
}
