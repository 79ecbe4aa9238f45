/**
 * The behaviour of GET /v1/models/{id}/file that both hosts must share (the Worker in workerd, the
 * Node server): whole file, ranges, validators, errors. Each host's test file calls this with its
 * own running server.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";

export interface FileServer {
  /** Base URL of the running server. */
  url: string;
  id: string;
  /** The GGUF it serves. */
  path: string;
  /** Headers every request needs (an API key). */
  headers: Record<string, string>;
}

export function modelFileChecks(server: () => FileServer): void {
  const get = (init: RequestInit & { headers?: Record<string, string> } = {}, id = server().id) =>
    fetch(`${server().url}/v1/models/${encodeURIComponent(id)}/file`, { ...init, headers: { ...server().headers, ...init.headers } });
  const bytes = () => new Uint8Array(readFileSync(server().path));
  const body = async (res: Response) => new Uint8Array(await res.arrayBuffer());

  it("GET: the whole file, with a strong ETag and Accept-Ranges", async () => {
    const res = await get();
    expect(res.status).toBe(200);
    const file = bytes();
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-length")).toBe(String(file.length));
    expect(res.headers.get("etag")).toMatch(/^"[^"]+"$/);
    expect(Buffer.compare(await body(res), file)).toBe(0);
  });

  it("HEAD: the same headers, no body", async () => {
    const res = await get({ method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(bytes().length));
    expect(res.headers.get("etag")).toBe((await get({ method: "HEAD" })).headers.get("etag"));
    expect((await body(res)).length).toBe(0);
  });

  it("Range: 206 with Content-Range for a span, an open end, a suffix; an end past the file is cut", async () => {
    const file = bytes();
    const n = file.length;
    const cases: [string, number, number][] = [
      ["bytes=0-99", 0, 99],
      ["bytes=1000-1999", 1000, 1999],
      [`bytes=${n - 7}-`, n - 7, n - 1],
      ["bytes=-10", n - 10, n - 1],
      [`bytes=${n - 3}-${n + 1000}`, n - 3, n - 1],
    ];
    for (const [range, start, end] of cases) {
      const res = await get({ headers: { range } });
      expect(res.status, range).toBe(206);
      expect(res.headers.get("content-range"), range).toBe(`bytes ${start}-${end}/${n}`);
      expect(res.headers.get("content-length"), range).toBe(String(end - start + 1));
      expect(Buffer.compare(await body(res), file.subarray(start, end + 1)), range).toBe(0);
    }
  });

  it("416 for a range past the end and for several ranges, with Content-Range: bytes */size", async () => {
    const n = bytes().length;
    for (const range of [`bytes=${n}-`, `bytes=${n + 10}-${n + 20}`, "bytes=0-9, 20-29"]) {
      const res = await get({ headers: { range } });
      expect(res.status, range).toBe(416);
      expect(res.headers.get("content-range"), range).toBe(`bytes */${n}`);
      expect((await res.json()).error.code).toBe("range_not_satisfiable");
    }
  });

  it("a malformed Range is ignored: the whole file", async () => {
    const res = await get({ headers: { range: "bytes=9-3" } });
    expect(res.status).toBe(200);
    expect((await body(res)).length).toBe(bytes().length);
  });

  it("If-None-Match with the current ETag: 304 without a body; another tag: 200", async () => {
    const etag = (await get({ method: "HEAD" })).headers.get("etag")!;
    const hit = await get({ headers: { "if-none-match": etag } });
    expect(hit.status).toBe(304);
    expect(hit.headers.get("etag")).toBe(etag);
    expect((await body(hit)).length).toBe(0);
    const miss = await get({ method: "HEAD", headers: { "if-none-match": '"not-this-one"' } });
    expect(miss.status).toBe(200);
  });

  it("If-Range: the range for the current ETag, the whole file for any other", async () => {
    const etag = (await get({ method: "HEAD" })).headers.get("etag")!;
    const same = await get({ headers: { range: "bytes=0-15", "if-range": etag } });
    expect(same.status).toBe(206);
    expect((await body(same)).length).toBe(16);
    const stale = await get({ headers: { range: "bytes=0-15", "if-range": '"an-older-upload"' } });
    expect(stale.status).toBe(200);
    expect((await body(stale)).length).toBe(bytes().length);
  });

  it("404 for another model id", async () => {
    const res = await get({}, "no-such-model");
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("model_not_found");
  });

  it("CORS: a browser may read Content-Range, ETag, Accept-Ranges and Content-Length", async () => {
    const res = await get({ method: "HEAD", headers: { origin: "https://app.example", range: "bytes=0-1" } });
    expect(res.status).toBe(206);
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(["content-range", "etag", "accept-ranges", "content-length"]));
  });
}

/** With serving off, the route says how to turn it on. */
export async function expectFileRouteOff(url: string, id: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${url}/v1/models/${encodeURIComponent(id)}/file`, { headers });
  expect(res.status).toBe(404);
  const err = (await res.json()).error;
  expect(err.code).toBe("model_file_disabled");
  expect(err.message).toMatch(/SERVE_MODEL_FILE=true/);
  expect(err.message).toMatch(/--serve-model-file/);
}
