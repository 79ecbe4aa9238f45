/** GET /health and GET /v1/models: what is served, or how far loading got. */
import type { LoadRetry, ModelState } from "../deps";
import type { GenerationQueue } from "../queue";

export function health(state: ModelState, queue?: GenerationQueue): Response {
  if (state.status === "ready") {
    const { model } = state;
    // The queue's state lets operators (and tests) see whether a generation is running right now.
    const batched = queue && queue.maxRunning > 1 ? { active: queue.load.running, max_running: queue.maxRunning, reserved_kv_blocks: queue.load.reservedBlocks } : {};
    const q = queue ? { queue: { running: queue.running, waiting: queue.depth, max_waiting: queue.maxWaiting, ...batched } } : {};
    const live = model.engine.liveStats?.() ?? {};
    return Response.json({ status: "ok", model: model.id, engine: model.engine.name, context_length: model.engine.config.contextLength, chat_template: model.chatTemplate ?? null, ...model.info, ...q, ...live });
  }
  const body =
    state.status === "loading"
      ? { status: "loading", reason: state.message, progress: state.progress ?? null }
      : { status: "failed", reason: state.message, progress: null, ...(state.integrity ? { integrity: state.integrity } : {}), ...retryFields(state.retry) };
  return Response.json(body, { status: 503, headers: { "retry-after": String(retryAfterSeconds(state)) } });
}

/** Seconds a client should wait before asking again: until the next load attempt when one is due. */
export function retryAfterSeconds(state: ModelState, now = Date.now()): number {
  if (state.status === "loading") return 2;
  if (state.status === "failed" && state.retry?.at !== undefined) return Math.max(1, Math.ceil((state.retry.at - now) / 1000));
  return 30;
}

function retryFields(retry: LoadRetry | undefined, now = Date.now()) {
  if (!retry) return {};
  const at = retry.at;
  return {
    attempts: retry.attempts,
    retry: retry.mode,
    next_attempt_at: at === undefined ? null : new Date(at).toISOString(),
    next_attempt_in_s: at === undefined ? null : Math.max(0, Math.ceil((at - now) / 1000)),
  };
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** GET /metrics: the engine's live figures as Prometheus gauges and counters (the Worker adds its routing metrics). */
export function engineMetrics(state: ModelState, queue?: GenerationQueue): string {
  const lines: string[] = [];
  const metric = (name: string, type: "gauge" | "counter", help: string, value: number) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  if (queue) {
    metric("edgelm_generations_running", "gauge", "Generations admitted and not finished.", queue.load.running);
    metric("edgelm_generations_waiting", "gauge", "Requests waiting for admission.", queue.depth);
    metric("edgelm_kv_blocks_reserved", "gauge", "KV blocks reserved by admitted generations (prompt + max_tokens each).", queue.load.reservedBlocks);
  }
  const live = state.status === "ready" ? state.model.engine.liveStats?.() : undefined;
  if (live?.kv) {
    const kv = live.kv;
    metric("edgelm_kv_blocks", "gauge", `KV cache blocks of ${kv.blockPositions} positions.`, kv.blocks);
    metric("edgelm_kv_blocks_used", "gauge", "KV blocks held by live sequences.", kv.used);
    metric("edgelm_kv_blocks_cached", "gauge", "KV blocks held by none, kept for prefix reuse.", kv.cached);
    metric("edgelm_kv_blocks_free", "gauge", "KV blocks never written or forgotten.", kv.free);
    metric("edgelm_prefix_cache_hits_total", "counter", "Prompts that started from cached KV blocks.", kv.prefixHits);
    metric("edgelm_prefix_cache_positions_total", "counter", "Prompt positions served from cached KV blocks.", kv.reusedPositions);
  }
  if (live?.batch) {
    const b = live.batch;
    metric("edgelm_batch_live_sequences", "gauge", "Sequences in the batching scheduler.", b.live);
    metric("edgelm_batch_max_sequences", "gauge", "Sequences per batched step at most.", b.maxBatch);
    metric("edgelm_batch_steps_total", "counter", "Batched forward steps run.", b.steps);
    metric("edgelm_batch_rows_total", "counter", "Token rows over all steps.", b.rows);
    metric("edgelm_batch_sequences_total", "counter", "Sequences over all steps (divided by steps: the mean batch).", b.sequences);
  }
  return lines.join("\n") + "\n";
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
