/**
 * `GET|HEAD /v1/models/{id}/file`: the served GGUF as bytes, for clients that run the model
 * themselves (the browser engine downloads it in ranges and resumes with If-Range). Off unless the
 * host hands over a file source: shipping weights is redistribution, so an operator opts in.
 */
import { ifRangeAllows, noneMatchHits, parseRange } from "../byte-range";
import type { ModelFileSource } from "../deps";
import { ApiError, errorResponse } from "../errors";

export const MODEL_FILE_PATH = /^\/v1\/models\/([^/]+)\/file$/;

const OFF_MESSAGE =
  "this server does not serve the model file: set the Worker var SERVE_MODEL_FILE=true, or start `edgelm serve` with --serve-model-file (serving the weights redistributes them under the model's licence)";

export async function modelFile(req: Request, rawId: string, source: ModelFileSource | undefined): Promise<Response> {
  if (!source) throw new ApiError(404, OFF_MESSAGE, "not_found_error", null, "model_file_disabled");
  let id: string;
  try {
    id = decodeURIComponent(rawId);
  } catch {
    id = rawId;
  }
  if (id !== source.id) throw new ApiError(404, `no model "${id}" here; this server has "${source.id}"`, "not_found_error", null, "model_not_found");

  const { size, etag } = await source.stat();
  const common: Record<string, string> = {
    etag,
    "accept-ranges": "bytes",
    // Revalidate with the ETag every time rather than trusting a cached copy of a replaced file.
    "cache-control": "no-cache",
    "content-disposition": `attachment; filename="${source.fileName.replace(/["\\\r\n]/g, "_")}"`,
  };
  if (noneMatchHits(req.headers.get("if-none-match"), etag)) return new Response(null, { status: 304, headers: common });

  const wanted = ifRangeAllows(req.headers.get("if-range"), etag) ? parseRange(req.headers.get("range"), size) : { kind: "full" as const };
  if (wanted.kind === "unsatisfiable" || wanted.kind === "multiple") {
    const why = wanted.kind === "multiple" ? "send one range per request (multipart answers are not served)" : `the file has ${size} bytes`;
    const e = new ApiError(416, `range not satisfiable: ${why}`, "invalid_request_error", null, "range_not_satisfiable");
    return errorResponse(e, { ...common, "content-range": `bytes */${size}` });
  }
  const [start, end, status] = wanted.kind === "partial" ? [wanted.start, wanted.end, 206] : [0, size - 1, 200];
  const headers: Record<string, string> = { ...common, "content-type": "application/octet-stream", "content-length": String(end - start + 1) };
  if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${size}`;
  // HEAD: the same headers, and no read of the file at all.
  if (req.method === "HEAD" || end < start) return new Response(null, { status, headers });
  return new Response(await source.read(start, end, etag), { status, headers });
}
