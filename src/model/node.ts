/** Node entry: a GGUF file on disk as a reference model. */
import { openGGUF, type GGUFFile } from "../gguf/node";
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
