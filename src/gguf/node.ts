/**
 * GGUF files on disk (Node): the header parsed once, tensors read by offset on
 * demand; and files written whole or not at all (a temporary name, then a rename).
 */
import { open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { ManifestCheck, manifestPathFor, parseManifest } from "./manifest";
import { parseHeader, type GGUFHeader } from "./reader";
import { FileSource } from "./source";
import type { TensorInfo } from "./types";
import { writeGGUF, type ByteSink, type GGUFSpec, type TensorProgress } from "./writer";

export interface GGUFFile extends GGUFHeader {
  path: string;
  size: number;
  tensor(name: string): TensorInfo;
  /** One tensor's bytes, freshly read (only that tensor is held). */
  readTensor(name: string | TensorInfo, dest?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Opens a model file for reading, with one-line errors that name it (missing, not a file). */
export async function openModelFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(err.code === "ENOENT" ? `no such file: ${path}` : `cannot open ${path}: ${err.message}`);
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw new Error(`${path} is not a file`);
  }
  return { handle, size: stat.size };
}

export async function openGGUF(path: string): Promise<GGUFFile> {
  const { handle, size } = await openModelFile(path);
  try {
    const src = new FileSource(handle, size);
    const header = await parseHeader(src);
    const tensor = (name: string): TensorInfo => {
      const t = header.tensorByName.get(name);
      if (!t) throw new Error(`${path}: no tensor named ${name}`);
      return t;
    };
    return {
      ...header,
      path,
      size,
      tensor,
      async readTensor(which, dest) {
        const info = typeof which === "string" ? tensor(which) : which;
        const out = dest ?? new Uint8Array(info.byteLength);
        if (out.length !== info.byteLength) throw new Error(`readTensor(${info.name}): destination is ${out.length} bytes, tensor is ${info.byteLength}`);
        await src.readAt(out, header.dataOffset + info.offset);
        return out;
      },
      close: () => handle.close(),
    };
  } catch (e) {
    await handle.close();
    throw e instanceof Error && !e.message.includes(path) ? Object.assign(e, { message: `${path}: ${e.message}` }) : e;
  }
}

/** The manifest beside a model file, as the check to load it against; undefined when there is none. */
export async function manifestCheckBeside(path: string): Promise<ManifestCheck | undefined> {
  const where = manifestPathFor(path);
  let text: string;
  try {
    text = await readFile(where, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") return undefined;
    throw new Error(`cannot read ${where}: ${err.message}`);
  }
  return new ManifestCheck(parseManifest(text, where), where);
}

/** A model file's size and header against its manifest, before any tensor is read. */
export async function checkFileHeader(path: string, size: number, dataOffset: number, check: ManifestCheck): Promise<void> {
  check.size(size);
  check.headerLength(dataOffset);
  const { handle } = await openModelFile(path);
  try {
    const bytes = new Uint8Array(dataOffset);
    await new FileSource(handle, size).readAt(bytes, 0);
    await check.header(bytes);
  } finally {
    await handle.close();
  }
}

/**
 * Writes a file front to back under a temporary name and renames it into
 * place, so a failed or interrupted write never leaves a partial model behind.
 */
export async function writeAtomically(path: string, write: (put: ByteSink) => Promise<void>): Promise<void> {
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

/** Writes a GGUF file tensor by tensor (one tensor's bytes in memory at a time); `onTensor` reports progress. */
export function writeGGUFFile(path: string, spec: GGUFSpec, onTensor?: TensorProgress): Promise<void> {
  return writeAtomically(path, (put) => writeGGUF(spec, put, onTensor));
}
