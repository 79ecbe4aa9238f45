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

/**
 * A byte stream of the chunks `source` yields, then [DONE]. The source is driven as fast as it
 * produces, not only when the consumer pulls: a generation must not park between tokens waiting
 * for a reader, because workerd notices a vanished client only when it writes (a parked stream
 * never writes again, so neither the cancel nor request.signal would ever fire). Events are small
 * and bounded by max_tokens, so the read-ahead is too. `onCancel` runs when the consumer goes
 * away, and `onEnd` once however the stream ends, so the caller can free its resources.
 */
export function sseStream(source: AsyncIterator<unknown>, hooks: { onCancel?: () => void; onEnd?: () => void } = {}): ReadableStream<Uint8Array> {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    hooks.onEnd?.();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      void (async () => {
        try {
          for (;;) {
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
    async cancel() {
      hooks.onCancel?.();
      end();
      // Let the generator run its cleanup; an abort error from it is expected here.
      await source.return?.(undefined)?.catch(() => {});
    },
  });
}
