/**
 * The request log of both hosts (the Worker and `edgelm serve`): one JSON line per request
 * (docs/operations.md, "The log lines"). A request that starts a generation here is written when
 * both its response has gone out and its generation has ended, in whichever order they come (a
 * stream's response starts before its first token; a non-streaming answer is built after the
 * last); every other request when its response goes out. It only records what the host already
 * sees: it adds no timer or await to a request.
 */
import type { GenerationSummary } from "./deps";

/** One request's line. Never the API key or the Authorization header: `tier` names the caller's class. */
export interface RequestLine {
  request_id: string;
  method: string;
  path: string;
  status: number;
  /** The API key's tier (`open` without keys, `-` where no key was needed); absent where the host has no keys. */
  tier?: string;
  /** The Worker's path that answered (x-edgelm-route): edge or origin; absent in `edgelm serve`. */
  route?: string;
  route_reason?: string;
  /** Why the first path choice did not answer (x-edgelm-fallback). */
  fallback?: string;
  /** Milliseconds from the request's arrival to its response's headers. */
  response_ms: number;
  /** Generations on this isolate: how it ended, and how far it got. */
  outcome?: GenerationSummary["outcome"];
  /** Aborted generations: what ended it (the disconnect signal, a cancelled stream, a stalled reader). */
  aborted_by?: GenerationSummary["abortedBy"];
  prompt_tokens?: number;
  prefilled_tokens?: number;
  completion_tokens?: number;
  /** Milliseconds from arrival to the first generated token; absent when none came out. */
  first_token_ms?: number;
  /** Milliseconds from arrival to the generation's end. */
  total_ms?: number;
  /** Set when the host saw the client go (request.signal aborted). */
  client_disconnected?: true;
  /** What the router had to say on the way (a failed path, a fallback, an origin error). */
  notes?: string[];
}

interface Entry {
  line: Partial<RequestLine>;
  t0: number;
  generating: boolean;
  generated: boolean;
  responded: boolean;
  written: boolean;
}

export class RequestLines {
  private readonly entries = new WeakMap<Request, Entry>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Opens the line of a request that just arrived and returns its id: the client's x-request-id
   * when it is a sane token (so logs on both sides join), else a fresh one. The host sends it back
   * as x-request-id.
   */
  begin(req: Request, path = pathOf(req)): string {
    const id = requestIdOf(req);
    this.entries.set(req, { line: { request_id: id, method: req.method, path }, t0: this.now(), generating: false, generated: false, responded: false, written: false });
    req.signal.addEventListener("abort", () => this.disconnected(req), { once: true });
    return id;
  }

  generationStarted(req: Request): void {
    const e = this.entries.get(req);
    if (e) e.generating = true;
  }

  generationEnded(req: Request, s: GenerationSummary): void {
    const e = this.entries.get(req);
    if (!e) return;
    Object.assign(e.line, {
      outcome: s.outcome,
      ...(s.abortedBy ? { aborted_by: s.abortedBy } : {}),
      prompt_tokens: s.promptTokens,
      prefilled_tokens: s.prefilled,
      completion_tokens: s.completionTokens,
      ...(s.firstTokenAt !== undefined ? { first_token_ms: s.firstTokenAt - e.t0 } : {}),
      total_ms: this.now() - e.t0,
    });
    e.generated = true;
    this.flush(e);
  }

  /** A router note: on the request's line if it is still open, else a line of its own naming the request. */
  note(req: Request, text: string): void {
    const e = this.entries.get(req);
    if (e && !e.written) (e.line.notes ??= []).push(text);
    else this.write(JSON.stringify({ request_id: e?.line.request_id ?? "-", note: text }));
  }

  private disconnected(req: Request): void {
    const e = this.entries.get(req);
    if (e) e.line.client_disconnected = true;
  }

  responded(req: Request, res: Response, tier?: string): void {
    const e = this.entries.get(req);
    if (!e) return;
    const h = (name: string) => res.headers.get(name) ?? undefined;
    Object.assign(e.line, {
      status: res.status,
      ...(tier !== undefined ? { tier } : {}),
      ...(h("x-edgelm-route") ? { route: h("x-edgelm-route") } : {}),
      ...(h("x-edgelm-route-reason") ? { route_reason: h("x-edgelm-route-reason") } : {}),
      ...(h("x-edgelm-fallback") ? { fallback: h("x-edgelm-fallback") } : {}),
      response_ms: this.now() - e.t0,
    });
    e.responded = true;
    this.flush(e);
  }

  private flush(e: Entry): void {
    if (e.written || !e.responded || (e.generating && !e.generated)) return;
    e.written = true;
    this.write(JSON.stringify(e.line));
  }
}

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestIdOf(req: Request): string {
  const given = req.headers.get("x-request-id");
  return given && SANE_ID.test(given) ? given : crypto.randomUUID();
}

/** The request's path without trailing slashes, as the hosts route it. */
export const pathOf = (req: Request): string => new URL(req.url).pathname.replace(/\/+$/, "") || "/";
