/**
 * The model's manifest, for the Worker's loader: read from beside the GGUF (MODEL_FILES or R2,
 * wherever the GGUF itself comes from) before the weights stream in, so the load verifies as it
 * reads. No manifest: the model is served as "unverified", or refused under REQUIRE_MANIFEST.
 */
import { ManifestCheck, ManifestMissingError, manifestPathFor, parseManifest } from "../gguf/manifest";
import type { Env } from "./env";
import { ObjectUnavailableError, openObjectIfAny } from "./source";

/**
 * The check a load of `modelKey` runs (undefined: load it unverified), and which upload of the
 * manifest it came from (null: none), so that a new manifest is noticed like a new GGUF.
 */
export async function manifestCheckFor(env: Env, modelKey: string, require: boolean): Promise<{ check?: ManifestCheck; version: string | null }> {
  const key = manifestPathFor(modelKey);
  const obj = await openObjectIfAny(env, key);
  if (!obj) {
    if (require) throw new ManifestMissingError(`REQUIRE_MANIFEST is true and there is no manifest "${key}" beside the model: edgelm convert, synth and download write it; upload it next to the GGUF`);
    return { version: null };
  }
  let text: string;
  try {
    text = await new Response(obj.body).text();
  } catch (err) {
    throw new ObjectUnavailableError(`reading "${key}" failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return { check: new ManifestCheck(parseManifest(text, key), key), version: obj.version ?? null };
}
