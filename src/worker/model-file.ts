/**
 * The model file for GET /v1/models/{id}/file, read from the R2 bucket the engine loads from: R2
 * keeps a strong ETag per object, and a ranged read is tied to that ETag, so a download never
 * stitches bytes of two uploads together.
 */
import type { ModelFileSource } from "../api/deps";
import { ApiError } from "../api/errors";
import type { Env, WorkerConfig } from "./env";

/** The part of an R2 bucket binding this file uses. */
interface R2Files {
  head(key: string): Promise<{ size: number; httpEtag: string } | null>;
  get(key: string, opts: { range: { offset: number; length: number }; onlyIf: { etagMatches: string } }): Promise<{ body?: ReadableStream<Uint8Array> } | null>;
}

export function r2ModelFile(env: Env, cfg: WorkerConfig): ModelFileSource {
  const key = cfg.modelKey;
  const bucket = (): R2Files => {
    if (!env.MODELS) throw new ApiError(503, "the model file is served from R2: bind the bucket as MODELS (wrangler.toml [[r2_buckets]])", "service_unavailable_error", null, "model_file_unavailable");
    return env.MODELS as unknown as R2Files;
  };
  const missing = () => new ApiError(404, `the model file "${key}" is not in the R2 bucket bound as MODELS`, "not_found_error", null, "model_file_missing");
  return {
    id: cfg.modelId,
    fileName: key.slice(key.lastIndexOf("/") + 1),
    async stat() {
      const head = await bucket().head(key);
      if (!head) throw missing();
      return { size: head.size, etag: head.httpEtag };
    },
    async read(start, end, etag) {
      // R2's etagMatches takes the bare value; httpEtag is the quoted header form.
      const obj = await bucket().get(key, { range: { offset: start, length: end - start + 1 }, onlyIf: { etagMatches: etag.replace(/^"|"$/g, "") } });
      if (!obj) throw missing();
      if (!obj.body) throw new ApiError(503, `the model file "${key}" was replaced while being served; retry`, "service_unavailable_error", null, "model_file_changed", 1);
      return obj.body;
    },
  };
}
