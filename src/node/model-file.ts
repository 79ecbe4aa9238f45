/**
 * The model file for GET /v1/models/{id}/file under `edgelm serve --serve-model-file`. The ETag
 * comes from the file's size, mtime and inode, read on every request, so replacing the file
 * changes it without the server having to hash a gigabyte.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Readable } from "node:stream";
import type { ModelFileSource } from "../api/deps";
import { ApiError } from "../api/errors";

export function diskModelFile(path: string, id: string): ModelFileSource {
  const current = async () => {
    const st = await stat(path);
    return { size: st.size, etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${st.ino.toString(16)}"` };
  };
  return {
    id,
    fileName: basename(path),
    stat: current,
    async read(start, end, etag) {
      if ((await current()).etag !== etag) throw new ApiError(503, "the model file changed while being served; retry", "service_unavailable_error", null, "model_file_changed", 1);
      return Readable.toWeb(createReadStream(path, { start, end })) as ReadableStream<Uint8Array>;
    },
  };
}
