/** Node entry: a GGUF file on disk as a reference model. */
import type { ManifestCheck } from "../gguf/manifest";
import { checkFileHeader, openGGUF, type GGUFFile } from "../gguf/node";
import { configFromGGUF } from "./config";
import { ReferenceModel } from "./reference";
import { loadWeights } from "./weights";

/** With `verify`, the file is checked against its manifest: the header first, each tensor as it is read. */
export async function loadReferenceModel(path: string, verify?: ManifestCheck): Promise<{ model: ReferenceModel; file: GGUFFile }> {
  const file = await openGGUF(path);
  try {
    if (verify) await checkFileHeader(path, file.size, file.dataOffset, verify);
    const config = configFromGGUF(file.metadata, file.tensorByName);
    const weights = await loadWeights(config, file.tensorByName, async (info) => {
      const bytes = await file.readTensor(info);
      await verify?.tensor(info.name, file.dataOffset + info.offset, bytes);
      return bytes;
    });
    return { model: new ReferenceModel(config, weights), file };
  } finally {
    await file.close();
  }
}
