/**
 * A stand-in OpenAI-compatible server that answers every completion or chat request with a canned
 * answer (streamed as SSE when the request asks for it, else one JSON body) and records the
 * requests. For tests of clients whose subject is what they send and what they do with an answer,
 * not what a model would say.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface CannedAnswer {
  /** The answer's text in the pieces it is streamed in (joined for a non-streamed answer). */
  pieces: string[];
  finish: string;
}

export interface SeenRequest {
  method: string;
  path: string;
  body: Record<string, unknown>;
}

export interface CannedServer {
  url: string;
  seen: SeenRequest[];
  /** The answer to every following request. */
  answer(a: CannedAnswer): void;
  close(): Promise<void>;
}

export async function startCannedServer(): Promise<CannedServer> {
  let answer: CannedAnswer = { pieces: ["ok"], finish: "stop" };
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
    const path = req.url ?? "/";
    seen.push({ method: req.method ?? "GET", path, body });
    const chat = path.endsWith("/chat/completions");
    if (!chat && !path.endsWith("/completions")) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `no route ${path}`, type: "invalid_request_error" } }));
      return;
    }
    const usage = { prompt_tokens: 3, completion_tokens: answer.pieces.length, total_tokens: 3 + answer.pieces.length };
    const base = { id: chat ? "chatcmpl-canned" : "cmpl-canned", created: 1, model: "canned" };
    if (body.stream !== true) {
      const whole = answer.pieces.join("");
      const choice = chat
        ? { index: 0, message: { role: "assistant", content: whole, refusal: null }, logprobs: null, finish_reason: answer.finish }
        : { index: 0, text: whole, logprobs: null, finish_reason: answer.finish };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ...base, object: chat ? "chat.completion" : "text_completion", choices: [choice], usage }));
      return;
    }
    const object = chat ? "chat.completion.chunk" : "text_completion";
    const chunk = (piece: string, finish: string | null) =>
      chat
        ? { ...base, object, choices: [{ index: 0, delta: finish === null ? { content: piece } : {}, logprobs: null, finish_reason: finish }] }
        : { ...base, object, choices: [{ index: 0, text: piece, logprobs: null, finish_reason: finish }] };
    res.writeHead(200, { "content-type": "text/event-stream" });
    if (chat) res.write(`data: ${JSON.stringify({ ...base, object, choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] })}\n\n`);
    for (const p of answer.pieces) res.write(`data: ${JSON.stringify(chunk(p, null))}\n\n`);
    res.write(`data: ${JSON.stringify(chunk("", answer.finish))}\n\n`);
    if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) res.write(`data: ${JSON.stringify({ ...base, object, choices: [], usage })}\n\n`);
    res.end("data: [DONE]\n\n");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    answer(a) {
      answer = a;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
