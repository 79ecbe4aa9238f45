/**
 * Reads a JSON request body with a size cap, counting bytes as they arrive so a huge or lying
 * Content-Length upload is cut off at the cap instead of buffered whole.
 */
import { ApiError, invalid } from "./errors";

function tooLarge(max: number): ApiError {
  return new ApiError(413, `request body is larger than ${max} bytes`, "invalid_request_error", null, "request_too_large");
}

export async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw invalid("body", "the request body is not valid UTF-8", "invalid_json");
  }
  if (text.trim() === "") throw invalid("body", "the request body is empty: send a JSON object", "invalid_json");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalid("body", `the request body is not valid JSON: ${(err as Error).message}`, "invalid_json");
  }
}
