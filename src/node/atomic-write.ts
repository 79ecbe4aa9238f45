/**
 * Writes a file front to back under a temporary name and renames it into
 * place, so a failed or interrupted write never leaves a partial model behind.
 */
import { open, rename, rm } from "node:fs/promises";

/** `put` appends bytes; it returns the file position after them. */
export type Put = (bytes: Uint8Array) => Promise<number>;

export async function writeAtomically(path: string, write: (put: Put) => Promise<void>): Promise<void> {
  const tmp = `${path}.partial-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fh = await open(tmp, "w");
  try {
    let pos = 0;
    await write(async (b) => {
      let done = 0;
      while (done < b.length) done += (await fh.write(b, done, b.length - done, pos + done)).bytesWritten;
      pos += b.length;
      return pos;
    });
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}
