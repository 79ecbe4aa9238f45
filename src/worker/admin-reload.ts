/**
 * POST /admin/reload: swaps the served model in place (model-swap.ts) and answers once the new
 * model serves, or with why it does not. Its own key, the ADMIN_KEY secret, not an API key: the
 * route is off (404) while ADMIN_KEY is unset, and a wrong key is refused before the body is read.
 *
 * Body (optional): {"key": "<model object key>"}; without it the serving key is loaded again
 * (its object may have been replaced).
 */
import { ApiError, errorResponse } from "../api/errors";
import { bearerToken, sameKey } from "./auth";
import { text, type Env, type ExecutionContextLike } from "./env";
import { SwapInProgressError, type ModelSwap } from "./model-swap";

export const ADMIN_RELOAD_PATH = "/admin/reload";

/** An admin body is a key at most; anything near this size is not one. */
const MAX_BODY_BYTES = 4096;

export async function adminReload(req: Request, env: Env, ctx: ExecutionContextLike, swap: ModelSwap): Promise<Response> {
  try {
    const adminKey = text(env.ADMIN_KEY);
    if (adminKey === undefined) throw new ApiError(404, `${ADMIN_RELOAD_PATH} is off: set the ADMIN_KEY secret to turn it on (docs/worker.md, "Swapping the model")`, "not_found_error", null, "admin_disabled");
    if (req.method !== "POST") throw new ApiError(405, `${ADMIN_RELOAD_PATH} takes POST`, "invalid_request_error", null, "method_not_allowed");
    const token = bearerToken(req);
    if (token === undefined) throw new ApiError(401, "missing admin key: send ADMIN_KEY as 'Authorization: Bearer <key>'", "invalid_request_error", null, "missing_admin_key");
    if (!sameKey(adminKey, token)) throw new ApiError(403, "invalid admin key", "invalid_request_error", null, "invalid_admin_key");
    const key = await requestedKey(req);
    let result;
    try {
      result = await swap.reload(env, ctx, key, "admin");
    } catch (err) {
      if (err instanceof SwapInProgressError) throw new ApiError(409, err.message, "invalid_request_error", null, "swap_in_progress");
      throw new ApiError(501, (err as Error).message, "invalid_request_error", null, "swap_unsupported");
    }
    if (!result.ok) throw new ApiError(502, `the swap to ${result.key} failed: ${result.message}`, "server_error", null, "swap_failed");
    const model = swap.state.status === "ready" ? swap.state.model.id : null;
    return Response.json({ status: "swapped", model, model_key: result.key, model_version: result.version, mode: result.mode, ms: result.ms, message: result.message });
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    const headers: Record<string, string> = err.status === 401 ? { "www-authenticate": "Bearer" } : err.status === 405 ? { allow: "POST" } : {};
    return errorResponse(err, headers);
  }
}

/** The key in the body, or undefined for "the serving key again". */
async function requestedKey(req: Request): Promise<string | undefined> {
  const raw = await req.text();
  if (raw.length > MAX_BODY_BYTES) throw new ApiError(413, `the body of ${ADMIN_RELOAD_PATH} is at most ${MAX_BODY_BYTES} bytes: {"key": "<model object key>"}`, "invalid_request_error", "body", "body_too_large");
  if (raw.trim() === "") return undefined;
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new ApiError(400, 'the body is not valid JSON: send {"key": "<model object key>"} or nothing', "invalid_request_error", "body", "invalid_json");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError(400, 'the body must be a JSON object: {"key": "<model object key>"}', "invalid_request_error", "body", "invalid_json");
  const unknown = Object.keys(body).filter((k) => k !== "key");
  if (unknown.length) throw new ApiError(400, `unknown field ${JSON.stringify(unknown[0])}: the body takes only "key"`, "invalid_request_error", unknown[0], "unknown_field");
  const key = (body as { key?: unknown }).key;
  if (key === undefined) return undefined;
  if (typeof key !== "string" || key.trim() === "" || key.length > 1024) throw new ApiError(400, '"key" must be a non-empty model object key (at most 1024 characters)', "invalid_request_error", "key", "invalid_value");
  return key.trim();
}
