/** GET /health and GET /v1/models: what is served, or how far loading got. */
import type { ModelState } from "../deps";
import type { GenerationQueue } from "../queue";

export function health(state: ModelState, queue?: GenerationQueue): Response {
  if (state.status === "ready") {
    const { model } = state;
    // The queue's state lets operators (and tests) see whether a generation is running right now.
    const q = queue ? { queue: { running: queue.running, waiting: queue.depth, max_waiting: queue.maxWaiting } } : {};
    return Response.json({ status: "ok", model: model.id, engine: model.engine.name, context_length: model.engine.config.contextLength, chat_template: model.chatTemplate ?? null, ...model.info, ...q });
  }
  const body =
    state.status === "loading"
      ? { status: "loading", reason: state.message, progress: state.progress ?? null }
      : { status: "failed", reason: state.message, progress: null };
  return Response.json(body, { status: 503, headers: { "retry-after": state.status === "loading" ? "2" : "30" } });
}

export function models(state: ModelState): Response {
  const data =
    state.status === "ready"
      ? [
          {
            id: state.model.id,
            object: "model",
            created: state.model.created,
            owned_by: "edgelm",
            root: state.model.id,
            parent: null,
            max_model_len: state.model.engine.config.contextLength,
          },
        ]
      : [];
  return Response.json({ object: "list", data });
}
