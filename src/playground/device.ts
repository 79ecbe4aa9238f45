/**
 * The playground's "on this device" backend: edgelm/local runs the engine in a Web Worker on this
 * page, with the model downloaded from this server's GET /v1/models/{id}/file (which the server
 * must allow: SERVE_MODEL_FILE=true / --serve-model-file) and kept in the browser's cache. Loaded
 * on the first request made with it; answers through edgelm/client like the edge does.
 */
import { APIError, createClient, type ChatCompletionChunk, type CompletionChunk, type FinishReason, type Usage } from "../client/index";
import { createLocalEngine, LOCAL_BASE_URL, type LocalEngine } from "../local/index";
import type { PlaygroundBackend, PlaygroundStream } from "./backends";

export const DEVICE_ROUTE = "on this device";

/** What a client stream offers; the device's comes once the engine is ready. */
type Inner<C> = PlaygroundStream<C>;

function deferred<C>(open: () => Promise<Inner<C>>): PlaygroundStream<C> {
  let inner: Inner<C> | undefined;
  return {
    get route() {
      return inner ? DEVICE_ROUTE : null;
    },
    get usage(): Usage | null {
      return inner?.usage ?? null;
    },
    get finishReason(): FinishReason | null {
      return inner?.finishReason ?? null;
    },
    async *[Symbol.asyncIterator]() {
      inner = await open();
      yield* inner;
    },
  };
}

/** `apiKey`: the key the page keeps (the file route wants one where the API does). */
export function deviceBackend(status: (text: string) => void, apiKey: () => string | undefined): PlaygroundBackend {
  let engine: Promise<LocalEngine> | undefined;
  const load = (): Promise<LocalEngine> =>
    (engine ??= (async () => {
      const h = (await (await fetch("/health")).json()) as { model?: string };
      if (!h.model) throw new Error("the server has no model loaded yet; try again in a moment");
      const e = createLocalEngine({
        model: `/v1/models/${encodeURIComponent(h.model)}/file`,
        workerURL: "/local/edgelm-local-worker.js",
        headers: apiKey() ? { authorization: `Bearer ${apiKey()}` } : {},
        onProgress: (p) => status(`on this device: ${p.phase} ${(p.loaded / 2 ** 20).toFixed(1)} of ${(p.total / 2 ** 20).toFixed(1)} MiB`),
        onWarning: (w) => status(`on this device: ${w}`),
      });
      try {
        await e.ready;
      } catch (err) {
        e.close();
        engine = undefined; // the next request tries again (say, after the server allows the file)
        // The file route wants the API's key: the page's 401 path asks for one, as for the edge.
        if (/HTTP 401/.test((err as Error).message)) throw new APIError(401, { error: { message: (err as Error).message, type: "invalid_request_error" } }, undefined);
        throw err;
      }
      status("on this device: model ready");
      return e;
    })());
  const client = async () => createClient({ baseURL: LOCAL_BASE_URL, fetch: (await load()).fetch, maxRetries: 0 });
  return {
    label: DEVICE_ROUTE,
    complete: (req, opts) => deferred<CompletionChunk>(async () => (await client()).complete(req, opts)),
    chat: (req, opts) => deferred<ChatCompletionChunk>(async () => (await client()).chat(req, opts)),
  };
}
