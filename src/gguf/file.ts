/** GGUF files on disk (Node): the header parsed once, tensors read by offset on demand. */
import { open, type FileHandle } from "node:fs/promises";
import { parseHeader, type GGUFHeader } from "./reader";
import { FileSource } from "./source";
import type { TensorInfo } from "./types";

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
