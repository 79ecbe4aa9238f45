/** Loading a GGUF as a reference model: from a file (Node) or a stream (an R2 object body). */
import { openGGUF, type GGUFFile } from "../gguf/file";
import { readGGUFStream, type GGUFHeader } from "../gguf/reader";
import { configFromGGUF } from "./config";
import { ReferenceModel } from "./reference";
import { loadWeights } from "./weights";

export async function loadReferenceModel(path: string): Promise<{ model: ReferenceModel; file: GGUFFile }> {
  const file = await openGGUF(path);
  try {
    const config = configFromGGUF(file.metadata, file.tensorByName);
    const weights = await loadWeights(config, file.tensorByName, (info) => file.readTensor(info));
    return { model: new ReferenceModel(config, weights), file };
  } finally {
    await file.close();
  }
}

/** One pass over the stream: each tensor lands in its own buffer, nothing else is kept. */
export async function loadReferenceModelFromStream(
  stream: ReadableStream<Uint8Array>,
  options: { size?: number; onProgress?: (bytesRead: number, total: number) => void } = {},
): Promise<{ model: ReferenceModel; header: GGUFHeader }> {
  const buffers = new Map<string, Uint8Array>();
  const header = await readGGUFStream(stream, (info) => {
    const b = new Uint8Array(info.byteLength);
    buffers.set(info.name, b);
    return b;
  }, options);
  const config = configFromGGUF(header.metadata, header.tensorByName);
  const weights = await loadWeights(config, header.tensorByName, async (info) => buffers.get(info.name)!);
  return { model: new ReferenceModel(config, weights), header };
}
