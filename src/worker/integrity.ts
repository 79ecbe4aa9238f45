/**
 * The model's manifest, for the Worker's loader: read from beside the GGUF (MODEL_FILES or R2,
 * wherever the GGUF itself comes from) before the weights stream in, so the load verifies as it
 * reads. No manifest: the model is served as "unverified", or refused under REQUIRE_MANIFEST.
 */
import { IntegrityError, ManifestCheck, manifestPathFor, parseManifest } from "../gguf/manifest";
import type { Env } from "./env";
import { filesUrl, ObjectUnavailableError, reach } from "./source";

export type Integrity = "verified" | "unverified" | "failed";

/**
 * REQUIRE_MANIFEST is set and there is no manifest (or no hashes in the shard plan). Not the
 * file's fault: uploading the manifest fixes it, so the loader retries with its backoff.
 */
export class ManifestMissingError extends ObjectUnavailableError {
  override name = "ManifestMissingError";
}

/** What /health says of a load that failed for this error; undefined when integrity had no part in it. */
export function integrityOfFailure(err: unknown): Exclude<Integrity, "verified"> | undefined {
  if (err instanceof IntegrityError) return "failed";
  if (err instanceof ManifestMissingError) return "unverified";
  return undefined;
}

/** The manifest's text, or null when there is none. */
async function readManifest(env: Env, key: string): Promise<string | null> {
  if (env.MODEL_FILES) {
    const files = env.MODEL_FILES;
    const res = await reach(`fetching "${key}" from MODEL_FILES`, () => files.fetch(filesUrl(key)));
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw new ObjectUnavailableError(`MODEL_FILES answered ${res.status} for "${key}"`);
    return reach(`reading "${key}" from MODEL_FILES`, () => res.text());
  }
  const bucket = env.MODELS;
  if (!bucket) return null;
  const obj = await reach(`reading "${key}" from R2`, () => bucket.get(key));
  return obj ? reach(`reading "${key}" from R2`, () => new Response(obj.body).text()) : null;
}

/** The check a load of `modelKey` runs, or undefined to load it unverified. */
export async function manifestCheckFor(env: Env, modelKey: string, require: boolean): Promise<ManifestCheck | undefined> {
  const key = manifestPathFor(modelKey);
  const text = await readManifest(env, key);
  if (text === null) {
    if (require) throw new ManifestMissingError(`REQUIRE_MANIFEST is true and there is no manifest "${key}" beside the model: edgelm convert, synth and download write it; upload it next to the GGUF`);
    return undefined;
  }
  return new ManifestCheck(parseManifest(text, key), key);
}
