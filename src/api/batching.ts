/**
 * How a host serves many users at once, the same in `edgelm serve` and the
 * Worker: an engine that can run batched steps is wrapped in the step
 * scheduler, and the queue admits up to `maxBatch` generations against the
 * engine's KV budget (queue.ts: each reserves prompt + max_tokens positions).
 */
import type { Engine } from "../model/engine";
import type { QueueCapacity } from "./queue";
import { StepScheduler } from "./step-scheduler";

export interface BatchingOptions {
  /** Generations decoding together (MAX_BATCH, --max-batch); 1 serves one at a time. */
  maxBatch: number;
  /** Token rows per step, prompt parts included (MAX_BATCH_TOKENS, --max-batch-tokens); default 64. */
  maxBatchTokens?: number;
  /** How waiting calls learn their outcome: StepSchedulerOptions.pollMs (the Worker sets it; Node leaves it unset). */
  pollMs?: number;
  /** StepSchedulerOptions.keepDriver (the sharded coordinator sets it). */
  keepDriver?: boolean;
}

export const DEFAULT_MAX_BATCH_TOKENS = 64;

/** The engine to serve with: the scheduler over `engine` when it batches and more than one may run. */
export function withBatching(engine: Engine, opts: BatchingOptions): Engine {
  if (opts.maxBatch <= 1 || !engine.forwardBatch) return engine;
  return new StepScheduler(engine, { maxBatch: opts.maxBatch, maxBatchTokens: opts.maxBatchTokens ?? DEFAULT_MAX_BATCH_TOKENS, pollMs: opts.pollMs, keepDriver: opts.keepDriver });
}

/** What the queue may admit to `engine` (served through withBatching with the same options). */
export function queueCapacity(engine: Engine, opts: BatchingOptions): QueueCapacity {
  const kv = engine.liveStats?.().kv;
  return { maxRunning: engine.forwardBatch ? Math.max(1, opts.maxBatch) : 1, kv: kv && { blocks: kv.blocks, blockPositions: kv.blockPositions } };
}
