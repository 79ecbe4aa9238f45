/**
 * Which failed loads are worth trying again on their own, and when. A missing or unreadable object
 * fixes itself (an upload finishes, storage comes back), so it is retried with a doubling pause;
 * a file that was read and found wrong stays wrong until someone replaces it, so retrying it would
 * only burn CPU and R2 reads: that one waits for the object to change.
 */
import { ManifestMissingError, SourceReadError } from "../gguf/index";
import { ObjectUnavailableError } from "./source";

export function retriesOnItsOwn(err: unknown): boolean {
  // A required manifest not there yet is like the model not there yet: the upload fixes it.
  return err instanceof ObjectUnavailableError || err instanceof SourceReadError || err instanceof ManifestMissingError;
}

/** The pause after the `failures`-th failure in a row: base, 2·base, 4·base … at most max. */
export function backoffMs(failures: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
}
