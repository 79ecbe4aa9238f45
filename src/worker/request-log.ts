/**
 * The Worker's one JSON log line per request, written when the request is over rather than when
 * its headers go out: a streamed generation's tokens, time to first token and how it ended are
 * only known then. A request is over once its response is out and, if it generated, once the
 * generation freed the engine (edge) or the origin's stream was accounted (origin).
 * Never the key or the Authorization header: the tier is enough to follow a client.
 */
import type { GenerationSummary } from "../api/index";
import type { RouteReport } from "../routing/router";

export type Outcome = "done" | "aborted" | "error" | "rejected";

/** The line's fields, in the order they are written (docs/operations.md, "The log line"). */
export interface RequestLine {
  event: "request";
  request_id: string;
  method: string;
  path: string;
  status: number;
  /** Who served it: the edge engine, the GPU origin, or neither (not a generation, or refused before routing). */
  route: "edge" | "origin" | "none";
  route_reason: string | null;
  fallback: string | null;
  tier: string;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  ttft_ms: number | null;
  total_ms: number;
  outcome: Outcome;
  /** What ended an aborted request (client_disconnect, stream_cancelled, stalled_reader), or an error's kind. */
  cause: string | null;
}

const ABORT_CAUSES = { signal: "client_disconnect", cancelled: "stream_cancelled", stalled: "stalled_reader" } as const;

interface Pending {
  id: string;
  method: string;
  path: string;
  t0: number;
  tier: string;
  response?: { status: number; route: RequestLine["route"]; reason: string | null; fallback: string | null };
  generating: number;
  /** An origin stream whose accounting has not ended yet. */
  awaitingOrigin: boolean;
  generation?: GenerationSummary;
  report?: RouteReport;
  disconnected: boolean;
  written: boolean;
}

export class RequestLog {
  private readonly pending = new WeakMap<Request, Pending>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number = () => Date.now(),
  ) {}

  begin(req: Request, id: string, path: string): void {
    const p: Pending = { id, method: req.method, path, t0: this.now(), tier: "-", generating: 0, awaitingOrigin: false, disconnected: false, written: false };
    this.pending.set(req, p);
    req.signal.addEventListener(
      "abort",
      () => {
        p.disconnected = true;
        // An origin stream whose body workerd dropped is never accounted: the line goes out now.
        if (p.awaitingOrigin && p.generating === 0) this.flush(p);
      },
      { once: true },
    );
  }

  tier(req: Request, tier: string): void {
    const p = this.pending.get(req);
    if (p) p.tier = tier;
  }

  generationStarted(req: Request): void {
    const p = this.pending.get(req);
    if (p) p.generating++;
  }

  generationEnded(req: Request, s: GenerationSummary): void {
    const p = this.pending.get(req);
    if (!p) return;
    p.generating--;
    p.generation = s;
    this.maybeFlush(p);
  }

  routed(req: Request, e: RouteReport): void {
    const p = this.pending.get(req);
    if (!p) return;
    // The path that answered last is the one that served (a fallback reports after the first).
    p.report = e;
    if (e.route === "origin") p.awaitingOrigin = false;
    this.maybeFlush(p);
  }

  /** The response is going out; `routed` is the router's route header, null when it did not route this request. */
  responded(req: Request, status: number, headers: Headers): void {
    const p = this.pending.get(req);
    if (!p) return;
    const route = headers.get("x-edgelm-route");
    p.response = {
      status,
      route: route === "edge" || route === "origin" ? route : "none",
      reason: headers.get("x-edgelm-route-reason"),
      fallback: headers.get("x-edgelm-fallback"),
    };
    const streamed = (headers.get("content-type") ?? "").startsWith("text/event-stream");
    p.awaitingOrigin = route === "origin" && streamed && p.report?.route !== "origin";
    this.maybeFlush(p);
  }

  private maybeFlush(p: Pending): void {
    if (p.response && p.generating === 0 && !p.awaitingOrigin) this.flush(p);
  }

  private flush(p: Pending): void {
    if (p.written || !p.response) return;
    p.written = true;
    const { response: r, generation: g, report: e } = p;
    const firstAt = g?.firstTokenAt ?? e?.firstTokenAt;
    const [outcome, cause] = outcomeOf(r.status, g, e, p.disconnected);
    const line: RequestLine = {
      event: "request",
      request_id: p.id,
      method: p.method,
      path: p.path,
      status: r.status,
      route: r.route,
      route_reason: r.reason,
      fallback: r.fallback,
      tier: p.tier,
      prompt_tokens: g?.promptTokens ?? e?.promptTokens ?? null,
      completion_tokens: g?.completionTokens ?? e?.completionTokens ?? null,
      ttft_ms: firstAt === undefined ? null : Math.max(0, firstAt - p.t0),
      total_ms: this.now() - p.t0,
      outcome,
      cause,
    };
    this.write(JSON.stringify(line));
  }
}

function outcomeOf(status: number, g: GenerationSummary | undefined, e: RouteReport | undefined, disconnected: boolean): [Outcome, string | null] {
  if (g?.outcome === "aborted") return ["aborted", g.abortedBy ? ABORT_CAUSES[g.abortedBy] : "aborted"];
  if (g?.outcome === "error") return ["error", "generation_error"];
  if (e?.status === 499) return ["aborted", "client_disconnect"];
  if (e?.errorKind && status < 400) return ["error", e.errorKind];
  // 429 (queue full), 503 (loading, model unavailable), 401, 400: refused before any work was done.
  if ((status >= 400 && status < 500) || status === 503) return ["rejected", null];
  if (status >= 500) return ["error", e?.errorKind ?? `http_${status}`];
  if (disconnected && !g) return ["aborted", "client_disconnect"];
  return ["done", null];
}
