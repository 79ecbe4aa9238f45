/**
 * The per-request JSON line (src/api/request-line.ts): exactly one line per request, written when
 * both its response and its generation (if it started one) are over, in either order. The lines a
 * real Worker writes for real requests are checked in test/worker (api, disconnect, rate-limit),
 * and `edgelm serve`'s in test/api/http.test.ts.
 */
import { describe, expect, it } from "vitest";
import { RequestLines } from "../../src/api/request-line";

function harness() {
  const out: string[] = [];
  let t = 1000;
  const lines = new RequestLines((l) => out.push(l), () => t);
  return { out, lines, advance: (ms: number) => (t += ms), parsed: () => out.map((l) => JSON.parse(l)) };
}

const response = (status: number, headers: Record<string, string> = {}) => new Response(null, { status, headers });
const summary = { outcome: "done" as const, promptTokens: 5, prefilled: 5, completionTokens: 7, firstTokenAt: 1000 + 40 };

describe("RequestLines", () => {
  it("a request without a generation is written when its response goes out", () => {
    const h = harness();
    const req = new Request("http://x/health/", { headers: { "x-request-id": "req-1" } });
    expect(h.lines.begin(req)).toBe("req-1");
    h.advance(3);
    h.lines.responded(req, response(200, { "x-edgelm-route": "edge" }), "-");
    expect(h.parsed()).toEqual([{ request_id: "req-1", method: "GET", path: "/health", status: 200, tier: "-", route: "edge", response_ms: 3 }]);
  });

  it("a stream: the response goes out first, the line waits for the generation's end", () => {
    const h = harness();
    const req = new Request("http://x/v1/completions", { method: "POST", headers: { "x-request-id": "req-2" } });
    h.lines.begin(req);
    h.lines.generationStarted(req);
    h.advance(10);
    h.lines.responded(req, response(200, { "x-edgelm-route": "edge", "x-edgelm-route-reason": "cheapest" }), "pro");
    expect(h.out).toEqual([]);
    h.lines.note(req, "something the router said");
    h.advance(90);
    h.lines.generationEnded(req, summary);
    expect(h.parsed()).toEqual([
      {
        request_id: "req-2",
        method: "POST",
        path: "/v1/completions",
        status: 200,
        tier: "pro",
        route: "edge",
        route_reason: "cheapest",
        response_ms: 10,
        notes: ["something the router said"],
        outcome: "done",
        prompt_tokens: 5,
        prefilled_tokens: 5,
        completion_tokens: 7,
        first_token_ms: 40,
        total_ms: 100,
      },
    ]);
  });

  it("a non-streaming answer: the generation ends first, the line goes with the response; an abort says by what", () => {
    const h = harness();
    const client = new AbortController();
    const req = new Request("http://x/v1/chat/completions", { method: "POST", headers: { "x-request-id": "req-3" }, signal: client.signal });
    h.lines.begin(req);
    h.lines.generationStarted(req);
    client.abort();
    h.lines.generationEnded(req, { outcome: "aborted", abortedBy: "signal", promptTokens: 3000, prefilled: 64, completionTokens: 0 });
    expect(h.out).toEqual([]);
    h.lines.responded(req, response(499), "free");
    const [line] = h.parsed();
    expect(line).toMatchObject({ request_id: "req-3", status: 499, tier: "free", outcome: "aborted", aborted_by: "signal", prompt_tokens: 3000, prefilled_tokens: 64, completion_tokens: 0, client_disconnected: true });
    expect(line).not.toHaveProperty("first_token_ms");
    expect(h.out).toHaveLength(1);
  });

  it("ids: the client's x-request-id when it is a sane token, else a fresh UUID; no tier or route where the host has none", () => {
    const h = harness();
    const weird = new Request("http://x/v1/models", { headers: { "x-request-id": "no spaces allowed" } });
    const id = h.lines.begin(weird);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.lines.begin(new Request("http://x/"))).not.toBe(id);
    h.lines.responded(weird, response(200));
    expect(h.parsed()).toEqual([{ request_id: id, method: "GET", path: "/v1/models", status: 200, response_ms: 0 }]);
  });

  it("is written once; a note after it is a line of its own naming the request", () => {
    const h = harness();
    const req = new Request("http://x/v1/completions", { method: "POST", headers: { "x-request-id": "req-4" } });
    h.lines.begin(req);
    h.lines.responded(req, response(200, { "x-edgelm-route": "origin", "x-edgelm-fallback": "edge failed" }), "pro");
    h.lines.responded(req, response(200), "pro");
    h.lines.note(req, "origin: stream broke");
    expect(h.parsed()).toEqual([
      { request_id: "req-4", method: "POST", path: "/v1/completions", status: 200, tier: "pro", route: "origin", fallback: "edge failed", response_ms: 0 },
      { request_id: "req-4", note: "origin: stream broke" },
    ]);
  });
});
