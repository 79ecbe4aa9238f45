/** Opens a GGUF file as a reference model (Node). */
import { openGGUF, type GGUFFile } from "../gguf/file";
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
