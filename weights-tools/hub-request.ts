/**
 * HTTP requests to the Hugging Face Hub with redirects followed by hand, so the bearer token goes
 * only to the endpoint's own origin: the Hub answers `/resolve/` for large files with a redirect to
 * a CDN on another host, and a token sent there would leak to a third party.
 */

export interface HubRequest {
  method?: "GET" | "HEAD" | "POST";
  /** Sent on every hop (Range, If-Range, content-type, …). */
  headers?: Record<string, string>;
  body?: string;
  /** Bearer token, sent only to hops whose origin is the first URL's origin. */
  token?: string;
  /**
   * false: stop at the first redirect to another origin and return that 3xx response (its headers
   * are the Hub's file metadata; the CDN's are not). Redirects within the origin (a renamed repo)
   * are still followed.
   */
  crossOrigin?: boolean;
  signal?: AbortSignal;
}

const MAX_HOPS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** One-line message for a failed fetch: undici hides the useful part in `cause`. */
export function networkMessage(e: unknown): string {
  const err = e as Error & { cause?: Error };
  return err.cause?.message ?? err.message;
}

export async function hubRequest(url: string, req: HubRequest = {}): Promise<Response> {
  const home = new URL(url).origin;
  let at = url;
  let method = req.method ?? "GET";
  let body = req.body;
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    const headers: Record<string, string> = { "user-agent": "edgelm-download", "accept-encoding": "identity", ...req.headers };
    if (req.token && new URL(at).origin === home) headers.authorization = `Bearer ${req.token}`;
    const res = await fetch(at, { method, headers, body, redirect: "manual", signal: req.signal });
    const location = res.headers.get("location");
    if (!REDIRECTS.has(res.status) || !location) return res;
    const next = new URL(location, at).toString();
    if (req.crossOrigin === false && new URL(next).origin !== home) return res;
    await res.body?.cancel();
    // 303 turns any method into GET, as browsers and curl do.
    if (res.status === 303 && method === "POST") {
      method = "GET";
      body = undefined;
    }
    at = next;
  }
  throw new Error(`${url}: more than ${MAX_HOPS} redirects`);
}
