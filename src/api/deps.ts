/**
 * What a host (Node server, Worker) hands to `handleRequest`: the model once loaded (or how far
 * loading got), the generation queue, and HTTP policy. The API layer never loads anything itself.
 */
import type { GenerationEngine } from "../generate/generator";
import type { ChatTemplateName, Tokenizer } from "../tokenizer/core";
import type { GenerationQueue } from "./queue";

export interface ServedModel {
  /** The id clients send as `model` and see in /v1/models. */
  id: string;
  engine: GenerationEngine;
  tokenizer: Tokenizer;
  /** Template for /v1/chat/completions; without one that endpoint answers 400. */
  chatTemplate?: ChatTemplateName;
  /** Unix seconds, for /v1/models. */
  created: number;
  /** Extra facts for /health and /v1/models (file, synthetic, quantization …). */
  info?: Record<string, unknown>;
}

export type ModelState =
  | { status: "ready"; model: ServedModel }
  | { status: "loading"; message: string; /** 0..1 when known */ progress?: number }
  | { status: "failed"; message: string };

export interface ApiDeps {
  /** Called per request, so the host can swap state as loading progresses. */
  model(): ModelState;
  /** Serialises generations; without one, requests run concurrently. */
  queue?: GenerationQueue;
  /** Allowed CORS origins; default "*". */
  corsOrigins?: "*" | readonly string[];
  /** Request bodies above this are refused with 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Chat's max_tokens when the request gives none (capped by the context left). Default 256. */
  chatDefaultMaxTokens?: number;
}

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
export const DEFAULT_CHAT_MAX_TOKENS = 256;
