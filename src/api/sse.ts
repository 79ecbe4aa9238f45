/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per event, `data: [DONE]\n\n` at
 * the end. An error after the headers went out becomes one `data: {"error":…}` event and the
 * stream closes without [DONE], which OpenAI SDKs raise as an APIError.
 */
import { toApiError } from "./errors";

const encoder = new TextEncoder();

export function sseEvent(data: unknown): Uint8Array {
  return encoder.encode(`data: ${JSON.stringify(data)}\n\n`);
}

export const SSE_DONE = encoder.encode("data: [DONE]\n\n");

/**
 * Yielded by a chunk source to send an SSE comment instead of an event: during a long prefill it
 * keeps proxies and clients from timing out an idle connection. Clients ignore comments.
 */
export const KEEP_ALIVE: unique symbol = Symbol("keep-alive");
const SSE_KEEP_ALIVE = encoder.encode(": keep-alive\n\n");

export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  // Proxies (nginx) buffer responses unless told not to; tokens must arrive as made.
  "x-accel-buffering": "no",
};

/** Events made ahead of a reader that has not taken them yet. */
export const DEFAULT_READ_AHEAD = 64;
/** A reader that takes nothing for this long, with a full read-ahead waiting, is taken as gone. */
export const DEFAULT_STALL_MS = 15_000;

export interface SseHooks {
  /** The consumer went away: it cancelled, or stalled past `stallMs`. */
  onCancel?: (why: "cancelled" | "stalled") => void;
  /** Once, however the stream ends. */
  onEnd?: () => void;
  readAhead?: number;
  stallMs?: number;
}

/**
 * A byte stream of the chunks `source` yields, then [DONE]. The source is driven ahead of the
 * consumer, up to `readAhead` events, rather than only on pull: workerd notices a vanished client
 * when it writes, so a generation parked until the next pull would never learn the client left.
 * Past the read-ahead it waits for the consumer; one that takes nothing for `stallMs` is treated as
 * gone. That is the fallback for hosts that lose the disconnect: Miniflare's entry Worker (wrangler
 * dev) often stops pulling without cancelling or aborting request.signal, and so does workerd
 * itself when the disconnect surfaces as a failed write; an unbounded read-ahead kept a dead
 * client's generation running, slowly, to max_tokens.
 */
export function sseStream(source: AsyncIterator<unknown>, hooks: SseHooks = {}): ReadableStream<Uint8Array> {
  const readAhead = hooks.readAhead ?? DEFAULT_READ_AHEAD;
  const stallMs = hooks.stallMs ?? DEFAULT_STALL_MS;
  let ended = false;
  let pulled: (() => void) | undefined;
  const end = () => {
    if (ended) return;
    ended = true;
    hooks.onEnd?.();
  };
  const gone = (why: "cancelled" | "stalled") => {
    hooks.onCancel?.(why);
    end();
    // Let the generator run its cleanup; an abort error from it is expected here.
    return source.return?.(undefined)?.catch(() => {});
  };
  /** Resolves true once the consumer has room again, false if it stalled. */
  const room = (controller: ReadableStreamDefaultController<Uint8Array>): Promise<boolean> | true => {
    if ((controller.desiredSize ?? 1) > 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), stallMs);
      pulled = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        void (async () => {
          try {
            for (;;) {
              const ok = await room(controller);
              if (ended) return;
              if (!ok) {
                controller.error(new Error(`the client took no data for ${stallMs} ms`));
                await gone("stalled");
                return;
              }
              const next = await source.next();
              if (ended) return;
              if (next.done) break;
              controller.enqueue(next.value === KEEP_ALIVE ? SSE_KEEP_ALIVE : sseEvent(next.value));
            }
            controller.enqueue(SSE_DONE);
            controller.close();
          } catch (err) {
            if (ended) return;
            controller.enqueue(sseEvent(toApiError(err).body()));
            controller.close();
          }
          end();
        })();
      },
      pull() {
        const wake = pulled;
        pulled = undefined;
        wake?.();
      },
      async cancel() {
        pulled?.();
        await gone("cancelled");
      },
    },
    new CountQueuingStrategy({ highWaterMark: readAhead }),
  );
}
