/**
 * MODEL_POINTER: a small object whose text is the key of the model object to serve. Rolling out
 * a model is then two uploads, the GGUF under a new key and the pointer last, with no redeploy;
 * every isolate picks the change up on its next poll (model-swap.ts).
 */
import type { Env } from "./env";
import { openModelObject } from "./source";

/** A pointer is one key; anything longer is not one (R2 keys are at most 1024 bytes). */
const MAX_POINTER_BYTES = 1024;

export class PointerError extends Error {
  override name = "PointerError";
}

/** The model key the pointer object names now. */
export async function readModelPointer(env: Env, pointerKey: string): Promise<string> {
  const obj = await openModelObject(env, pointerKey);
  if (obj.size !== undefined && obj.size > MAX_POINTER_BYTES) {
    await obj.body.cancel();
    throw new PointerError(`the pointer object "${pointerKey}" is ${obj.size} bytes; it must hold only a model key (at most ${MAX_POINTER_BYTES} bytes)`);
  }
  const key = (await new Response(obj.body).text()).trim();
  if (key === "" || key.length > MAX_POINTER_BYTES || /[\r\n]/.test(key)) {
    throw new PointerError(`the pointer object "${pointerKey}" must hold one model key (one line of text), got ${JSON.stringify(key.slice(0, 80))}`);
  }
  return key;
}
