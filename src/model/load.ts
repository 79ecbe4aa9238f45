/** A GGUF stream (an R2 object body, a fetch body) as a reference model, in one pass. */
import type { ManifestCheck } from "../gguf/manifest";
import { readGGUFStream, type GGUFHeader } from "../gguf/reader";
import { configFromGGUF } from "./config";
import { ReferenceModel } from "./reference";
import { loadWeights } from "./weights";

/** Each tensor lands in its own buffer; nothing else of the stream is kept. */
export async function loadReferenceModelFromStream(
  stream: ReadableStream<Uint8Array>,
  options: { size?: number; onProgress?: (bytesRead: number, total: number) => void; verify?: ManifestCheck } = {},
): Promise<{ model: ReferenceModel; header: GGUFHeader }> {
  const buffers = new Map<string, Uint8Array>();
  const header = await readGGUFStream(stream, (info) => {
    const b = new Uint8Array(info.byteLength);
    buffers.set(info.name, b);
    return b;
  }, options);
  const config = configFromGGUF(header.metadata, header.tensorByName);
  const weights = await loadWeights(config, header.tensorByName, async (info) => {
    const b = buffers.get(info.name);
    if (!b) throw new Error(`tensor ${info.name} was not in the stream`);
    return b;
  });
  return { model: new ReferenceModel(config, weights), header };
}
