/**
 * What the client tests run against: the real Node server with the tiny synthetic model (random
 * weights; greedy output is still deterministic), and a fault-injecting HTTP proxy in front of it
 * that can refuse, stall, cut, corrupt or hold back the stream on cue and counts every attempt.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { sseEventsOf } from "../helpers/sse";

export async function startTinyServer(): Promise<RunningServer> {
  const path = await synthGGUF("tiny", "f32");
  const server = await startServer({ modelPath: path, port: 0, host: "127.0.0.1", modelId: "tiny", engine: "ref", chatTemplate: "zephyr", log: () => {} });
  await server.ready;
  return server;
}

/** A request as the proxy saw it. */
export interface Seen {
  attempt: number;
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface Ctx extends Seen {
  req: IncomingMessage;
  res: ServerResponse;
  /** Sends the request on to the real server; the upstream body is cancelled when the client goes away. */
  upstream(): Promise<Response>;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

export interface FaultProxy {
  url: string;
  /** Every request received, in order. */
  seen: Seen[];
  readonly attempts: number;
  handle(h: Handler): void;
  close(): Promise<void>;
}

export async function startFaultProxy(upstreamURL: string): Promise<FaultProxy> {
  let handler: Handler = passThrough();
  const seen: Seen[] = [];
  const sockets = new Set<import("node:net").Socket>();
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const info: Seen = { attempt: seen.length + 1, method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
    seen.push(info);
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const upstream = () =>
      fetch(upstreamURL + info.path, {
        method: info.method,
        headers: { "content-type": "application/json", ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) },
        body: info.method === "GET" ? undefined : info.body,
        signal: gone.signal,
      });
    try {
      await handler({ ...info, req, res, upstream });
    } catch {
      // A handler cut off by the client leaving is expected; make sure the socket is released.
      res.destroy();
    }
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    get attempts() {
      return seen.length;
    },
    handle(h) {
      handler = h;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Copies status and headers (content-length dropped: the body may be rewritten). */
export function writeHead(res: ServerResponse, up: Response, extra: Record<string, string> = {}): void {
  const headers: Record<string, string> = {};
  up.headers.forEach((v, k) => {
    if (k !== "content-length" && k !== "transfer-encoding" && k !== "connection" && k !== "keep-alive") headers[k] = v;
  });
  res.writeHead(up.status, { ...headers, ...extra });
}

/** The upstream SSE body as whole events, as the server produced them. */
export const upstreamEvents = sseEventsOf;

export type EventAction = "send" | "skip" | "end" | "destroy";

/**
 * Forwards the real server's answer event by event; `onEvent` decides for each data event (index from 0)
 * whether to send it, drop it, end the response cleanly there, or cut the connection.
 */
export function passThrough(opts: { headers?: Record<string, string>; onEvent?: (i: number, raw: string, res: ServerResponse) => Promise<EventAction> | EventAction } = {}): Handler {
  return async ({ res, upstream }) => {
    const up = await upstream();
    writeHead(res, up, opts.headers);
    if (!opts.onEvent || !(up.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      // Byte for byte as it arrives: a proxy that buffered would hide the streaming under test.
      const reader = up.body!.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) res.write(r.value);
      res.end();
      return;
    }
    let i = 0;
    for await (const raw of upstreamEvents(up)) {
      // Comment-only blocks (keep-alives) pass untouched and uncounted: onEvent sees data events.
      if (raw.startsWith(":")) {
        res.write(raw);
        continue;
      }
      const action = await opts.onEvent(i++, raw, res);
      if (action === "send") res.write(raw);
      else if (action === "end") return void res.end();
      else if (action === "destroy") return void res.destroy();
    }
    res.end();
  };
}

/** An OpenAI error answer. */
export function refuse(res: ServerResponse, status: number, headers: Record<string, string>, error: Record<string, unknown>): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ error }));
}

/** A canned SSE answer (no model involved) for tests that need one immediately. */
export function cannedSSE(res: ServerResponse, texts: string[], opts: { done?: boolean; finish?: string | null } = {}): void {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const t of texts) res.write(`data: ${JSON.stringify(completionChunk(t, null))}\n\n`);
  if (opts.finish !== null) res.write(`data: ${JSON.stringify(completionChunk("", opts.finish ?? "stop"))}\n\n`);
  if (opts.done !== false) res.write("data: [DONE]\n\n");
  res.end();
}

export function completionChunk(text: string, finish: string | null) {
  return { id: "cmpl-canned", object: "text_completion", created: 1, model: "canned", choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] };
}

/** A promise with its resolver, for holding a proxy back until the test says so. */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** A port nothing listens on. */
export { freePort as closedPort } from "../helpers/ports";
