/** The `model` field: optional (one model is served), but a different name is a 404 as in vLLM. */
import { ApiError } from "../errors";
import type { ServedModel } from "../deps";

export function checkModelName(requested: string | undefined, model: ServedModel): void {
  if (requested === undefined || requested === model.id) return;
  throw new ApiError(404, `the model "${requested}" does not exist; this server serves "${model.id}" (see GET /v1/models)`, "not_found_error", "model", "model_not_found");
}
