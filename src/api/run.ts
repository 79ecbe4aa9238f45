/**
 * One generation's lifetime around the engine: wait for the queue, link the request's abort signal
 * (client disconnect) to the generation, and free the queue slot exactly once however it ends —
 * finished, failed, or cancelled mid-stream.
 */
import { generate, type GenerateEvent, type GenerateOptions } from "../generate/generator";
import type { ApiDeps, ServedModel } from "./deps";
import { sseStream, SSE_HEADERS } from "./sse";

export interface Run {
  events: AsyncGenerator<GenerateEvent, void, undefined>;
  abort(): void;
  release(): void;
}

export async function startRun(deps: ApiDeps, model: ServedModel, opts: Omit<GenerateOptions, "signal">, signal: AbortSignal): Promise<Run> {
  const releaseSlot = deps.queue ? await deps.queue.acquire(signal) : () => {};
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  let released = false;
  return {
    events: generate(model.engine, model.tokenizer, { ...opts, signal: controller.signal }),
    abort: () => controller.abort(),
    release: () => {
      if (released) return;
      released = true;
      signal.removeEventListener("abort", onAbort);
      releaseSlot();
    },
  };
}

/** Streams `chunks` as SSE, or collects the whole response as JSON; the slot is released either way. */
export async function respond<T>(
  run: Run,
  stream: boolean,
  chunks: (events: AsyncIterable<GenerateEvent>) => AsyncGenerator<unknown>,
  collect: (events: AsyncIterable<GenerateEvent>) => Promise<T>,
): Promise<Response> {
  if (stream) {
    const body = sseStream(chunks(run.events), { onCancel: run.abort, onEnd: run.release });
    return new Response(body, { status: 200, headers: SSE_HEADERS });
  }
  try {
    const result = await collect(run.events);
    return Response.json(result);
  } finally {
    run.release();
  }
}
