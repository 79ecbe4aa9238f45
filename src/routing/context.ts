/**
 * What the router is given by its host, and what one request carries from decide through the
 * attempts to respond, so each step is a plain function of it.
 */
import type { ChatRequest } from "../api/chat-request";
import type { CompletionRequest } from "../api/completion-request";
import type { RouteContext } from "../api/deps";
import type { ApiError } from "../api/errors";
import type { JsonObject } from "../api/fields";
import type { CircuitBreaker } from "./breaker";
import type { Route, RoutingConfig } from "./config";
import type { RoutingMetrics } from "./metrics";
import type { Endpoint } from "./origin";
import type { RouteDecision } from "./policy";

/** What the router needs to know about the edge right now. */
export interface EdgeView {
  state: "ready" | "loading" | "failed";
  queueFull: boolean;
  /** Prompt tokens of a validated request: the edge tokenizer's count when loaded, else an estimate. */
  countPromptTokens(endpoint: Endpoint, r: CompletionRequest | ChatRequest): number;
  /** The edge's CPU estimate against its budget; undefined when the deployment checks none. */
  cpu(promptTokens: number, maxTokens: number): { cpuMs: number; budgetMs: number } | undefined;
}

export interface RouterDeps {
  cfg: RoutingConfig;
  /** The id clients use (MODEL_ID) and see in every response, whichever path served it. */
  modelId: string;
  breaker: CircuitBreaker;
  metrics: RoutingMetrics;
  edge(): EdgeView;
  fetch?: typeof fetch;
  now(): number;
  /**
   * The caller's rate limit, asked once per request when its size is known and before any path is
   * tried, so both paths count. Undefined (or no hook): not limited.
   */
  limit?(call: RouteCall, reserveTokens: number): Promise<LimitAnswer | undefined>;
}

/** A limit's answer: refused (the error and its headers), or admitted with headers and a way to settle. */
export type LimitAnswer =
  | { ok: false; error: ApiError; headers: Headers }
  | {
      ok: true;
      headers: Headers;
      /** Once, when the request ends: the tokens it used (prompt + completion; 0 when no path served it). */
      settle(usedTokens: number): void;
    };

export interface RouteCall extends RouteContext {
  tier: string;
  log(line: string): void;
}

/** A request the policy gave a path to. */
export interface RoutedRequest {
  call: RouteCall;
  deps: RouterDeps;
  /** The client's body as sent; each path sends its own rewritten copy. */
  body: JsonObject;
  request: CompletionRequest | ChatRequest;
  /** The model id without its precision suffix: the suffix was for the policy. */
  base: string | undefined;
  promptTokens: number;
  /** max_tokens as the request will run: the client's, else the endpoint's default. */
  maxTokens: number;
  decision: RouteDecision;
  /** When the request arrived, for the duration metrics. */
  t0: number;
  /** Tells the rate limit what the request used, once it ends (accounting calls it). */
  settle?(usedTokens: number): void;
}

export interface Fallback {
  from: Route;
  cause: string;
}

/**
 * One path's try. It serves (respond builds the answer; the fallback, when this path is one, goes
 * into the headers), or it failed before its first token and the router may try the other path.
 */
export type Attempt = { ok: true; respond(fallback: Fallback | null): Promise<Response> } | { ok: false; cause: string; response: Response };
