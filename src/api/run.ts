/**
 * One generation's lifetime around the engine: wait for the queue, link the request's abort signal
 * (client disconnect) to the generation, and free the queue slot exactly once however it ends —
 * finished, failed, or cancelled mid-stream.
 */
import { generate, type GenerateEvent, type GenerateOptions } from "../generate/generator";
import type { ApiDeps, GenerationSummary, ServedModel } from "./deps";
import { sseStream, SSE_HEADERS } from "./sse";

export interface Run {
  events: AsyncGenerator<GenerateEvent, void, undefined>;
  abort(why?: "cancelled" | "stalled"): void;
  release(): void;
  /** See ApiDeps.streamStallMs. */
  stallMs?: number;
}

export async function startRun(deps: ApiDeps, model: ServedModel, opts: Omit<GenerateOptions, "signal">, req: Request, body?: unknown): Promise<Run> {
  const signal = req.signal;
  const releaseSlot = deps.queue ? await deps.queue.acquire(signal, opts.prompt.length + opts.maxTokens) : () => {};
  const controller = new AbortController();
  let released = false;
  let finished!: () => void;
  // Settles once the slot is released AND the generator has run its finally (which frees the
  // sequence's KV blocks): a host keeps the request alive until then (workerd drops a dropped
  // request's timers, and a generator parked on one would never free its sequence).
  const freed = new Promise<void>((r) => (finished = r));
  const gen = { started: false, ended: false };
  const settle = () => {
    if (released && (!gen.started || gen.ended)) finished();
  };
  deps.onGenerationStart?.(req, freed, model);
  const summary: GenerationSummary = { outcome: "error", promptTokens: opts.prompt.length, prefilled: 0, completionTokens: 0 };
  const release = () => {
    if (released) return;
    released = true;
    signal.removeEventListener("abort", onAbort);
    releaseSlot();
    if (summary.outcome !== "done" && controller.signal.aborted) summary.outcome = "aborted";
    deps.onGenerationEnd?.(req, summary);
    settle();
  };
  // A disconnect frees the engine at once. The generator is parked at an await (it yields to the
  // event loop between every step), and it checks the signal before any further forward pass.
  // Freeing here matters where nothing would ever pull or cancel the response body again (workerd
  // may just drop it), which would otherwise hold the queue forever.
  const onAbort = () => {
    summary.abortedBy ??= "signal";
    controller.abort(signal.reason);
    release();
    // Nobody may pull the stream again: end the generator here, so its finally frees the sequence.
    if (gen.started) void events.return(undefined).catch(() => {});
  };
  const engine = model.engineFor?.(req, body, opts.prompt) ?? model.engine;
  const events = tracked(generate(engine, model.tokenizer, { prefillChunkTokens: deps.prefillChunkTokens, clock: deps.clock, ...opts, signal: controller.signal }), summary, gen, settle);
  const abort = (why: "cancelled" | "stalled" = "cancelled") => {
    summary.abortedBy ??= why;
    controller.abort();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return { events, abort, release, stallMs: deps.streamStallMs };
}

/**
 * Passes events through, noting how far the generation got (for onGenerationEnd), when it started,
 * and when it has finished (the generator's finally, which frees the sequence, has run).
 */
async function* tracked(
  events: AsyncGenerator<GenerateEvent, void, undefined>,
  s: GenerationSummary,
  gen: { started: boolean; ended: boolean },
  settle: () => void,
): AsyncGenerator<GenerateEvent, void, undefined> {
  gen.started = true;
  try {
    for await (const ev of events) {
      if (ev.type === "prefill") s.prefilled = ev.done;
      else if (ev.type === "token") {
        s.firstTokenAt ??= Date.now();
        s.prefilled = s.promptTokens;
        s.completionTokens++;
      } else s.outcome = "done";
      yield ev;
    }
  } finally {
    gen.ended = true;
    settle();
  }
}

/** Streams `chunks` as SSE, or collects the whole response as JSON; the slot is released either way. */
export async function respond<T>(
  run: Run,
  stream: boolean,
  chunks: (events: AsyncIterable<GenerateEvent>) => AsyncGenerator<unknown>,
  collect: (events: AsyncIterable<GenerateEvent>) => Promise<T>,
): Promise<Response> {
  if (stream) {
    const body = sseStream(chunks(run.events), { onCancel: run.abort, onEnd: run.release, stallMs: run.stallMs });
    return new Response(body, { status: 200, headers: SSE_HEADERS });
  }
  try {
    const result = await collect(run.events);
    return Response.json(result);
  } finally {
    run.release();
  }
}
