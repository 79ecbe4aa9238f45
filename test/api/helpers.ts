/** Shared by the API tests: the synthetic tiny model (real vocabulary, random weights) and an SSE reader. */
import { synthGGUF } from "../../weights-tools/fixtures";
import type { ApiDeps, ServedModel } from "../../src/api/deps";
import { GenerationQueue } from "../../src/api/queue";
import { loadServedModel } from "../../src/node/server";

let model: Promise<ServedModel> | undefined;

/** Loaded once per test file, on the reference engine (the tests check its name), zephyr for chat. */
export function tinyModel(): Promise<ServedModel> {
  model ??= synthGGUF("tiny", "f32").then((path) => loadServedModel(path, { modelId: "tiny", engine: "ref", chatTemplate: "zephyr" }));
  return model;
}

export function readyDeps(m: ServedModel, extra: Partial<ApiDeps> = {}): ApiDeps {
  return { model: () => ({ status: "ready", model: m }), queue: new GenerationQueue(4), ...extra };
}

export function post(path: string, body: unknown, init: RequestInit = {}): Request {
  return new Request(`http://test${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

export interface SSEResult {
  /** Parsed `data:` payloads other than [DONE]. */
  events: any[];
  done: boolean;
  /** Raw text, to check the framing itself. */
  raw: string;
}

/**
 * Splits an SSE body into events the way the spec does: events end at a blank line, `data:` lines
 * of one event are joined with "\n". Only what OpenAI streams is handled (no event/id/retry fields).
 */
export function parseSSE(raw: string): SSEResult {
  const events: any[] = [];
  let done = false;
  const blocks = raw.split(/\r?\n\r?\n/);
  const tail = blocks.pop();
  if (tail !== undefined && tail.trim() !== "") throw new Error(`SSE stream ends inside an event: ${JSON.stringify(tail)}`);
  for (const block of blocks) {
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, ""))
      .join("\n");
    if (data === "[DONE]") {
      if (done) throw new Error("two [DONE] events");
      done = true;
    } else {
      if (done) throw new Error("an event after [DONE]");
      events.push(JSON.parse(data));
    }
  }
  return { events, done, raw };
}

/** Reads SSE events one by one from a live body (for tests that stop part-way). */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<any> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.replace(/^data: /, "");
        yield data === "[DONE]" ? "[DONE]" : JSON.parse(data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}
