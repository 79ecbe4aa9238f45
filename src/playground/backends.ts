/**
 * Who answers the playground: a named backend per entry of the backend select. Each one hands back
 * streams shaped like edgelm/client's (async iterable of chunks plus route, usage, finish reason),
 * so the page reads every backend the same way. The edge API is built in; another (the on-device
 * engine) joins by calling `registerBackend` before the page starts.
 */
import { createClient, type ChatCompletionChunk, type ChatRequest, type CompletionChunk, type CompletionRequest, type FinishReason, type Usage } from "../client/index";

/** The part of a client ChunkStream the page reads. */
export type PlaygroundStream<C> = AsyncIterable<C> & {
  readonly route: string | null;
  readonly usage: Usage | null;
  readonly finishReason: FinishReason | null;
};

export interface PlaygroundBackend {
  /** Text of its option in the backend select. */
  label: string;
  complete(req: CompletionRequest, opts: { signal: AbortSignal }): PlaygroundStream<CompletionChunk>;
  chat(req: ChatRequest, opts: { signal: AbortSignal }): PlaygroundStream<ChatCompletionChunk>;
}

const registry = new Map<string, PlaygroundBackend>();

/** Adds (or replaces) the backend shown as `backend.label` under the select value `id`. */
export function registerBackend(id: string, backend: PlaygroundBackend): void {
  registry.set(id, backend);
}

export function backends(): ReadonlyMap<string, PlaygroundBackend> {
  return registry;
}

/**
 * The API that served this page, through edgelm/client. `apiKey` is read per call so that a key
 * typed after a 401 is used by the next request without rebuilding anything.
 */
export function edgeBackend(baseURL: string, apiKey: () => string | undefined): PlaygroundBackend {
  const client = () => createClient({ baseURL, apiKey: apiKey(), maxRetries: 2 });
  return {
    label: "edge API",
    complete: (req, opts) => client().complete(req, opts),
    chat: (req, opts) => client().chat(req, opts),
  };
}
