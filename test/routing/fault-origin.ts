/**
 * The GPU origin as the Worker's tests see it: the stand-in (`startServer`, our Node host of the
 * same OpenAI protocol vLLM speaks) serving a tiny F32 model under vLLM's served name, behind a
 * fault-injecting HTTP front that also plays vLLM's `--api-key` (401 without the right bearer).
 * The front can answer a status, refuse connections (it stops listening on its port), stall
 * before the headers, before the first token or after it, slow every event down, echo the
 * credential it received, or replay canned chunks as vLLM would stream them (for what the stand-in
 * cannot produce on cue: vLLM's tool-call deltas); it records every request that reached it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";
import { sseEventsOf } from "../helpers/sse";

export const ORIGIN_MODEL = "stabilityai/stablelm-2-1_6b";

export type Fault =
  | { kind: "pass"; delayMs?: number }
  | { kind: "status"; status: number; body?: (auth: string) => string }
  | { kind: "stall-before-headers" }
  | { kind: "stall-before-first-token" }
  | { kind: "stall-after-first-token" }
  /** Answers 200 with these objects as SSE events, then [DONE]; the stand-in is not asked. */
  | { kind: "replay"; events: readonly unknown[] };

export interface Seen {
  path: string;
  authorization: string | undefined;
  body: any;
}

export interface FaultOrigin {
  url: string;
  standIn: RunningServer;
  fault: Fault;
  seen: Seen[];
  /** Stop listening (new connections are refused) and drop open connections. */
  refuse(): Promise<void>;
  /** Listen again on the same port. */
  accept(): Promise<void>;
  close(): Promise<void>;
}

export async function startStandIn(): Promise<RunningServer> {
  const server = await startServer({ modelPath: await synthGGUF("tiny", "f32"), port: 0, host: "127.0.0.1", modelId: ORIGIN_MODEL, engine: "ref", chatTemplate: "zephyr", log: () => {} });
  await server.ready;
  return server;
}

export async function startFaultOrigin(apiKey: string): Promise<FaultOrigin> {
  const standIn = await startStandIn();
  const sockets = new Set<Socket>();
  const o: FaultOrigin = {
    url: "",
    standIn,
    fault: { kind: "pass" },
    seen: [],
    refuse: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
    accept: () => listen(port),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      await standIn.close();
    },
  };
  const server: Server = createServer((req, res) => void handle(o, apiKey, req, res).catch(() => res.destroy()));
  server.on("connection", (s) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on("close", () => sockets.delete(s));
  });
  const listen = (p: number) => new Promise<void>((r) => server.listen(p, "127.0.0.1", r));
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  o.url = `http://127.0.0.1:${port}`;
  return o;
}

async function handle(o: FaultOrigin, apiKey: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  const auth = req.headers.authorization;
  o.seen.push({ path: req.url ?? "/", authorization: auth, body: text ? JSON.parse(text) : undefined });
  const gone = new AbortController();
  res.on("close", () => gone.abort());
  const hold = () => new Promise<void>((r) => res.on("close", () => r()));

  // vLLM with --api-key: /v1/* needs the bearer token, /health does not.
  if (req.url?.startsWith("/v1/") && auth !== `Bearer ${apiKey}`) {
    res.writeHead(401, { "content-type": "application/json" });
    return void res.end(JSON.stringify({ error: "Unauthorized" }));
  }
  const f = o.fault;
  if (f.kind === "status") {
    res.writeHead(f.status, { "content-type": "application/json" });
    return void res.end(f.body ? f.body(auth ?? "") : JSON.stringify({ error: { message: "injected failure", type: "InternalServerError", param: null, code: f.status } }));
  }
  if (f.kind === "stall-before-headers") return hold();
  if (f.kind === "replay") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    for (const e of f.events) res.write(`data: ${JSON.stringify(e)}\n\n`);
    return void res.end("data: [DONE]\n\n");
  }

  const up = await fetch(o.standIn.url + (req.url ?? "/"), { method: req.method, headers: { "content-type": "application/json" }, body: req.method === "GET" ? undefined : text, signal: gone.signal });
  const headers: Record<string, string> = {};
  up.headers.forEach((v, k) => {
    if (!["content-length", "transfer-encoding", "connection", "keep-alive"].includes(k)) headers[k] = v;
  });
  res.writeHead(up.status, headers);
  if (f.kind === "stall-before-first-token") {
    res.write(": stalled before the first token\n\n");
    await up.body?.cancel();
    return hold();
  }
  let tokens = 0;
  for await (const ev of sseEventsOf(up)) {
    if (f.kind === "pass" && f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
    if (res.destroyed) return;
    res.write(ev);
    if (f.kind === "stall-after-first-token" && /"(text|content)":"[^"]/.test(ev) && ++tokens >= 1) return hold();
  }
  res.end();
}

