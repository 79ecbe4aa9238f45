/**
 * A stand-in for the Hugging Face Hub on loopback, for `download --gguf`: `/resolve/` answers HEAD
 * with the Hub's file metadata headers (x-linked-etag, x-linked-size, x-repo-commit) and GET with
 * the bytes (Range, If-Range, 416), `paths-info` answers POST, and a second server on another
 * origin plays the CDN the Hub redirects large files to. Switches make it misbehave the way real
 * networks and servers do: drop the connection mid-body, ignore Range, lie about the sha256,
 * change the file's ETag, leave out the metadata headers. Every request is logged with its
 * Range, If-Range and Authorization, so a test can check what went where.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeHubMode {
  /** The next `drops` GETs of a file send `dropAfter` body bytes, then the socket is destroyed. */
  drops: number;
  dropAfter: number;
  /** Instead of destroying the socket, a dropped GET goes silent (a stalled connection). */
  stall: boolean;
  /**
   * The client's part file. A client's body stream that errors drops what it still buffers, so a
   * drop that came too soon would lose bytes the client had been sent, and the range it resumes
   * from would depend on the machine's load. When this is set, the socket is destroyed only once
   * the part holds every byte sent; otherwise after a 100 ms pause.
   */
  partFile: string | undefined;
  /** The sha256 in x-linked-etag and paths-info is wrong. */
  lieSha: boolean;
  /** Range is ignored: every GET is a 200 with the whole file. */
  ignoreRange: boolean;
  /** `/resolve/` redirects (302) to the CDN server, as the Hub does for LFS files. */
  viaCdn: boolean;
  /** x-linked-etag / x-linked-size are sent (a mirror may drop them). */
  linkedHeaders: boolean;
  /** Neither x-linked-size nor paths-info says how big the file is. */
  hideSize: boolean;
  /** The file's ETag; change it to play a new upload (If-Range then fails). */
  etag: string;
}

export interface LoggedRequest {
  server: "hub" | "cdn";
  method: string;
  url: string;
  range?: string;
  ifRange?: string;
  auth?: string;
}

export interface FakeHub {
  url: string;
  cdnUrl: string;
  commit: string;
  mode: FakeHubMode;
  requests: LoggedRequest[];
  sha256(spec: string): string;
  close(): Promise<void>;
}

const WRONG_SHA = "0".repeat(64);

const sizeOf = (path: string) => statSync(path, { throwIfNoEntry: false })?.size ?? 0;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** `files`: "owner/repo/path/in/repo.gguf" → the file on disk to serve for it. */
export async function startFakeHub(files: Record<string, string>): Promise<FakeHub> {
  const commit = "c0ffee".padEnd(40, "0");
  const blobs = new Map<string, { spec: string; body: Buffer; sha256: string }>();
  for (const [spec, path] of Object.entries(files)) {
    const body = readFileSync(path);
    blobs.set(spec, { spec, body, sha256: createHash("sha256").update(body).digest("hex") });
  }
  const bySha = new Map([...blobs.values()].map((b) => [b.sha256, b]));
  const mode: FakeHubMode = { drops: 0, dropAfter: 0, stall: false, partFile: undefined, lieSha: false, ignoreRange: false, viaCdn: false, linkedHeaders: true, hideSize: false, etag: '"v1"' };
  const requests: LoggedRequest[] = [];
  const log = (server: LoggedRequest["server"], req: IncomingMessage) =>
    requests.push({ server, method: req.method ?? "", url: req.url ?? "", range: req.headers.range, ifRange: req.headers["if-range"] as string | undefined, auth: req.headers.authorization });

  function sendBytes(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const headers = { etag: mode.etag, "accept-ranges": "bytes", "content-type": "application/octet-stream" };
    const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    let start = 0;
    if (r && !mode.ignoreRange && (!ifRange || ifRange === mode.etag)) {
      start = Number(r[1]);
      if (start >= body.length) {
        res.writeHead(416, { ...headers, "content-range": `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { ...headers, "content-length": body.length - start, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` });
    } else {
      res.writeHead(200, { ...headers, "content-length": body.length });
    }
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    if (mode.drops > 0) {
      mode.drops--;
      const sent = body.subarray(start, Math.min(body.length, start + mode.dropAfter));
      if (mode.stall) res.write(sent);
      else res.write(sent, () => dropOnceRead(res, start + sent.length));
      return;
    }
    res.end(body.subarray(start));
  }

  function dropOnceRead(res: ServerResponse, end: number): void {
    const since = Date.now();
    const look = () => {
      const waited = Date.now() - since;
      const read = mode.partFile === undefined ? waited >= 100 : sizeOf(mode.partFile) >= end;
      // Past 10 s the client is not reading at all; dropping then lets its test fail on the range.
      if (read || waited > 10_000) res.socket?.destroy();
      else setTimeout(look, 5);
    };
    look();
  }

  function hubMetadata(b: { body: Buffer; sha256: string }): Record<string, string | number> {
    const h: Record<string, string | number> = { "x-repo-commit": commit };
    if (mode.linkedHeaders) {
      h["x-linked-etag"] = `"${mode.lieSha ? WRONG_SHA : b.sha256}"`;
      if (!mode.hideSize) h["x-linked-size"] = b.body.length;
    }
    return h;
  }

  const cdn = createServer((req, res) => {
    log("cdn", req);
    const b = bySha.get(/^\/blobs\/([0-9a-f]{64})$/.exec(req.url ?? "")?.[1] ?? "");
    if (!b) res.writeHead(404).end();
    else sendBytes(req, res, b.body);
  });
  const cdnUrl = await listen(cdn);

  const hub = createServer((req, res) => {
    log("hub", req);
    const url = req.url ?? "";
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    if (resolve && (req.method === "GET" || req.method === "HEAD")) {
      const [, repo, rev, path] = resolve;
      const b = blobs.get(`${repo}/${decodeURIComponent(path)}`);
      if (!b || (rev !== "main" && rev !== commit)) {
        res.writeHead(404, { "x-error-code": "EntryNotFound" }).end();
        return;
      }
      if (mode.viaCdn) {
        res.writeHead(302, { ...hubMetadata(b), location: `${cdnUrl}/blobs/${b.sha256}` }).end();
        return;
      }
      for (const [k, v] of Object.entries(hubMetadata(b))) res.setHeader(k, v);
      sendBytes(req, res, b.body);
      return;
    }
    const info = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/.exec(url);
    if (info && req.method === "POST") {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => {
        const paths: string[] = JSON.parse(text).paths ?? [];
        const list = paths.flatMap((p) => {
          const b = blobs.get(`${info[1]}/${p}`);
          return b ? [{ type: "file", path: p, size: b.body.length, oid: "1".repeat(40), lfs: { oid: mode.lieSha ? WRONG_SHA : b.sha256, size: mode.hideSize ? undefined : b.body.length, pointerSize: 134 } }] : [];
        });
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(list));
      });
      return;
    }
    res.writeHead(404).end();
  });
  const hubUrl = await listen(hub);

  return {
    url: hubUrl,
    cdnUrl,
    commit,
    mode,
    requests,
    sha256: (spec) => blobs.get(spec)!.sha256,
    async close() {
      hub.closeAllConnections();
      cdn.closeAllConnections();
      await Promise.all([new Promise((ok) => hub.close(ok)), new Promise((ok) => cdn.close(ok))]);
    },
  };
}
