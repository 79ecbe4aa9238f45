/**
 * A small node:http static server for the browser tests and bench of edgelm/local: a few files,
 * and one GGUF served the way a CDN (or the model-file route) serves it — ETag, If-None-Match →
 * 304, Range → 206 — with switches a test flips: the ETag (a "new version" of the file) and
 * `truncate` (the body stops halfway and the connection is dropped). It counts what it served, so
 * a test can tell a download from a revalidation.
 */
import { createReadStream, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface GGUFServerOptions {
  /** URL path → file on disk (its type from the extension). */
  files: Record<string, string>;
  /** URL path → literal content. */
  pages?: Record<string, { body: string; type: string }>;
  model: { route: string; path: string };
}

export interface GGUFServer {
  url: string;
  model: { etag: string; truncate: boolean };
  /** Whole-file 200s of the model, its 304s, its 206s, and every request to it. */
  counts: { downloads: number; notModified: number; ranges: number; requests: number };
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { js: "text/javascript", wasm: "application/wasm", html: "text/html", map: "application/json" };

export async function startGGUFServer(opts: GGUFServerOptions): Promise<GGUFServer> {
  const size = statSync(opts.model.path).size;
  const state: GGUFServer["model"] = { etag: '"v1"', truncate: false };
  const counts = { downloads: 0, notModified: 0, ranges: 0, requests: 0 };
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const page = opts.pages?.[path];
    if (page) {
      res.writeHead(200, { "content-type": page.type, "cache-control": "no-store" });
      res.end(page.body);
      return;
    }
    const file = opts.files[path];
    if (file) {
      const body = readFileSync(file);
      res.writeHead(200, { "content-type": TYPES[file.split(".").pop()!] ?? "application/octet-stream", "content-length": body.length, "cache-control": "no-store" });
      res.end(body);
      return;
    }
    if (path !== opts.model.route) {
      res.writeHead(404).end();
      return;
    }
    counts.requests++;
    const headers = { etag: state.etag, "accept-ranges": "bytes", "content-type": "application/octet-stream", "cache-control": "no-cache" };
    const inm = req.headers["if-none-match"];
    if (inm && inm.split(",").map((s) => s.trim()).includes(state.etag)) {
      counts.notModified++;
      res.writeHead(304, headers).end();
      return;
    }
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    if (range && (!ifRange || ifRange === state.etag)) {
      const start = range[1] ? Number(range[1]) : size - Number(range[2]);
      const end = range[1] && range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (!(start >= 0 && start <= end)) {
        res.writeHead(416, { ...headers, "content-range": `bytes */${size}` }).end();
        return;
      }
      counts.ranges++;
      res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${size}`, "content-length": end - start + 1 });
      if (req.method === "HEAD") res.end();
      else createReadStream(opts.model.path, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, { ...headers, "content-length": size });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    counts.downloads++;
    if (state.truncate) {
      // Half the announced bytes, then the connection drops: what a flaky network or a killed proxy does.
      const half = createReadStream(opts.model.path, { start: 0, end: Math.floor(size / 2) - 1 });
      half.on("data", (c) => res.write(c));
      half.on("end", () => setTimeout(() => res.destroy(), 50));
      return;
    }
    createReadStream(opts.model.path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    model: state,
    counts,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
