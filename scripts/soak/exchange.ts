/**
 * One request of a soak, sent and read to its end, and what became of it. The server's side of the
 * contract (docs/api.md): a streamed response ends with `data: [DONE]`, or, after an error once
 * the headers were out, with a `data: {"error": …}` event and no [DONE]; a stream that simply
 * stops is a fault. An abort of our own is never held against the server.
 */
import { SseReader } from "../../src/util/sse-reader";
import type { Kind, Plan } from "./traffic";

export type End =
  /** A stream that ended with [DONE], or a JSON body with a finished choice. */
  | "complete"
  /** A stream that ended with an error event and no [DONE]. */
  | "error-event"
  /** An error status with an OpenAI error body. */
  | "error-body"
  /** We aborted it (before or after the response started). */
  | "aborted"
  /** Faults: a stream without [DONE] or an error event; a body that is not what the API promises; the connection failed; no end within the limit. */
  | "cut"
  | "malformed"
  | "network-error"
  | "timeout";

export const FAULTS: readonly End[] = ["cut", "malformed", "network-error", "timeout"];

export interface Outcome {
  kind: Kind;
  stream: boolean;
  /** HTTP status, or 0 when no response came. */
  status: number;
  end: End;
  /** The error body's or event's `code`, e.g. queue_full. */
  code?: string;
  /** ms from sending to the first token with text; streams only. */
  ttftMs?: number;
  /** ms between consecutive tokens with text; streams only. */
  itlMs: number[];
  tokens: number;
  startMs: number;
  durationMs: number;
  /** The status is one the plan allows (an abort of ours before any response counts as allowed). */
  expected: boolean;
  /** What went wrong, for faults and unexpected statuses. */
  detail?: string;
}

/** Sends `plan` to `base`; never throws. `limitMs` bounds the whole exchange (a hung stream is a timeout, not a hang of the soak). */
export async function exchange(base: string, plan: Plan, limitMs: number, t0 = performance.now()): Promise<Outcome> {
  const startMs = performance.now();
  const out: Outcome = { kind: plan.kind, stream: plan.stream, status: 0, end: "aborted", itlMs: [], tokens: 0, startMs: startMs - t0, durationMs: 0, expected: false };
  const ac = new AbortController();
  let why: "ours" | "limit" | undefined;
  const stop = (reason: "ours" | "limit") => {
    why ??= reason;
    ac.abort();
  };
  const timers = [setTimeout(() => stop("limit"), limitMs)];
  if (plan.abortAfterMs !== undefined) timers.push(setTimeout(() => stop("ours"), plan.abortAfterMs));
  const finish = (end: End, detail?: string): Outcome => {
    timers.forEach(clearTimeout);
    out.durationMs = performance.now() - startMs;
    out.end = why === "limit" ? "timeout" : why === "ours" ? "aborted" : end;
    if (out.end === "timeout") out.detail = `no end within ${limitMs} ms`;
    else if (detail && FAULTS.includes(out.end)) out.detail = detail;
    out.expected = out.status === 0 ? out.end === "aborted" : plan.expect.includes(out.status);
    if (!out.expected && !out.detail) out.detail = `status ${out.status} (${out.code ?? "no code"}) for a ${plan.kind} request: ${plan.body.slice(0, 160)}`;
    return out;
  };

  let res: Response;
  try {
    res = await fetch(base + plan.path, { method: "POST", headers: { "content-type": "application/json" }, body: plan.body, signal: ac.signal });
  } catch (e) {
    return finish("network-error", errText(e));
  }
  out.status = res.status;
  const isSse = (res.headers.get("content-type") ?? "").startsWith("text/event-stream");
  if (plan.stream && res.status === 200 && !isSse) {
    await res.body?.cancel().catch(() => {});
    return finish("malformed", `a streamed request answered 200 with content-type ${res.headers.get("content-type")}`);
  }
  if (!isSse) {
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      return finish("cut", `body: ${errText(e)}`);
    }
    return finish(...judgeBody(res.status, text, out));
  }

  const reader = new SseReader(res.body!);
  let done = false;
  let error = false;
  let finished = false;
  let last = 0;
  try {
    for (;;) {
      const ev = await reader.next();
      if (!ev) break;
      if (done) return finish("malformed", `data after [DONE]: ${ev.data.slice(0, 200)}`);
      if (ev.data === "[DONE]") {
        done = true;
        continue;
      }
      let chunk: Chunk;
      try {
        chunk = JSON.parse(ev.data) as Chunk;
      } catch {
        return finish("malformed", `event is not JSON: ${ev.data.slice(0, 200)}`);
      }
      if (chunk.error) {
        error = true;
        out.code = chunk.error.code ?? undefined;
        continue;
      }
      const choice = chunk.choices?.[0];
      if (choice?.finish_reason) finished = true;
      const text = choice?.text ?? choice?.delta?.content;
      if (text) {
        const now = performance.now();
        if (out.ttftMs === undefined) out.ttftMs = now - startMs;
        else out.itlMs.push(now - last);
        last = now;
        out.tokens++;
        if (plan.abortAfterEvents !== undefined && out.tokens >= plan.abortAfterEvents) {
          stop("ours");
          await reader.cancel();
          return finish("aborted");
        }
      }
    }
  } catch (e) {
    return finish("cut", `stream: ${errText(e)}`);
  }
  if (done && error) return finish("malformed", "both an error event and [DONE]");
  if (done) return finish(finished ? "complete" : "malformed", "[DONE] without a chunk that has finish_reason");
  if (error) return finish("error-event");
  return finish("cut", `stream ended after ${out.tokens} tokens with neither [DONE] nor an error event`);
}

interface Chunk {
  error?: { code?: string | null; message?: string };
  choices?: { text?: string; delta?: { content?: string | null }; finish_reason?: string | null; message?: unknown }[];
}

function judgeBody(status: number, text: string, out: Outcome): [End, string?] {
  let body: { error?: { code?: string | null; message?: unknown }; choices?: { finish_reason?: string | null }[]; usage?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    return ["malformed", `status ${status}, body not JSON: ${text.slice(0, 200)}`];
  }
  if (status === 200) {
    const reason = body.choices?.[0]?.finish_reason;
    return reason && body.usage ? ["complete"] : ["malformed", `200 without finish_reason or usage: ${text.slice(0, 200)}`];
  }
  if (!body.error || typeof body.error.message !== "string") return ["malformed", `status ${status} without an error body: ${text.slice(0, 200)}`];
  out.code = body.error.code ?? undefined;
  return ["error-body"];
}

function errText(e: unknown): string {
  const err = e as Error & { cause?: Error };
  return err.cause ? `${err.message} (${err.cause.message})` : String(err?.message ?? e);
}
