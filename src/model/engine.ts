/**
 * The one engine interface: what the generation loop, the API and the hosts
 * need from a forward pass, whichever engine runs it (the reference model, the
 * WASM engine, the sharded coordinator).
 */
import type { StableLMConfig } from "./config";
import { ReferenceModel, type Sequence } from "./reference";

export interface Engine {
  /** Which engine and kernel build is running (shown in /health and logs). */
  readonly name: string;
  /** Generation needs only these; the in-process engines carry the whole config. */
  readonly config: Pick<StableLMConfig, "vocabSize" | "contextLength">;
  /** A fresh, empty KV sequence; opaque to callers, handed back to forward(). */
  newSequence(): unknown;
  /** Feeds tokens at positions startPos.. and returns the last position's logits (or every position's): arrays the caller keeps. */
  forward(seq: unknown, tokens: number[], startPos?: number, opts?: ForwardOptions): Float32Array[] | Promise<Float32Array[]>;
  /**
   * One step for several sequences (each its own tokens and position), giving
   * each entry what forward() would give it alone. Engines that share the
   * weight reads between the rows implement it; the others are fed one
   * sequence at a time (forwardEach).
   */
  forwardBatch?(entries: readonly BatchEntry[], opts?: StepOptions): Float32Array[][] | Promise<Float32Array[][]>;
  /**
   * Work of one forward call that belongs to its caller, done by a batching scheduler in the
   * caller's own context before the call joins a step: I/O that must be the caller's (the sharded
   * coordinator's embedding reads are its request's subrequests), not the step's driver's.
   */
  prepare?(seq: unknown, tokens: readonly number[]): Promise<void>;
  /** A new sequence takes what the engine has cached of the start of `prompt`; returns the positions it holds (at most prompt.length − 1). */
  reusePrefix?(seq: unknown, prompt: readonly number[]): number;
  /** The sequence is finished: its KV may go to another (without it, engines reuse the least recently used). */
  releaseSequence?(seq: unknown): void;
  /** Live figures for /health and /metrics: the KV cache's blocks and the batching scheduler's steps, where the engine has them. */
  liveStats?(): EngineStats;
  /** Bytes of memory the engine holds, where it can tell (the wasm engine: its WebAssembly memory); a host swapping models checks a second one fits beside it. */
  memoryBytes?(): number;
  /** Releases what the engine holds beyond memory (the wasm engine's threads in Node); the hosts call it when they stop. */
  close?(): Promise<void>;
}

export interface EngineStats {
  kv?: {
    blocks: number;
    blockPositions: number;
    /** Held by live sequences / cached for prefix reuse but held by none / never written or forgotten. */
    used: number;
    cached: number;
    free: number;
    /** Prompt positions served from the prefix cache, and prompts that found any. */
    reusedPositions: number;
    prefixHits: number;
    /** The weights' identity the prefix cache is keyed by, when the host gave one. */
    modelIdentity?: string;
  };
  batch?: {
    steps: number;
    /** Rows and sequences over all steps (÷ steps: the mean batch). */
    rows: number;
    sequences: number;
    /** Sequences made and not released; forward calls waiting for a step. */
    live: number;
    waiting: number;
    maxBatch: number;
    maxBatchTokens: number;
    /** Steps given up as lost (their driver stopped mid-step) and run again. */
    lost: number;
  };
}

/** How a batched step is run. */
export interface StepOptions {
  /**
   * The sequence whose caller runs the step (one of its entries, or of the step a re-run entry came
   * from): an engine whose step does I/O does it as that caller's (the sharded coordinator's shard
   * sessions are that request's).
   */
  driver?: unknown;
}

/** Which logits a forward call hands back, and where. */
export interface ForwardOptions {
  /** Logits of every new position, not only the last. */
  allLogits?: boolean;
  /**
   * An array of the vocabulary's length for the last position's logits, which the engine may
   * fill and return instead of a new one: a generation loop hands the same array to every step
   * of its sequence (a new 400 KB array per step often faults its pages in afresh: docs/engine.md).
   * Not with allLogits.
   */
  into?: Float32Array;
}

/** One sequence's part of a batched step: its new tokens at positions startPos.. (default: after what it caches). */
export interface BatchEntry extends ForwardOptions {
  seq: unknown;
  tokens: number[];
  startPos?: number;
}

/** A batched step on any engine: its forwardBatch, or forward() per entry. */
export async function forwardEach(engine: Engine, entries: readonly BatchEntry[]): Promise<Float32Array[][]> {
  if (engine.forwardBatch) return engine.forwardBatch(entries);
  const out: Float32Array[][] = [];
  for (const e of entries) out.push(await engine.forward(e.seq, e.tokens, e.startPos, { allLogits: e.allLogits, into: e.into }));
  return out;
}

export function referenceEngine(model: ReferenceModel): Engine & { readonly config: StableLMConfig } {
  return {
    name: "ref",
    config: model.config,
    newSequence: () => model.newSequence(),
    forward: (seq, tokens, startPos, opts) => model.forward(seq as Sequence, tokens, startPos, opts),
  };
}
