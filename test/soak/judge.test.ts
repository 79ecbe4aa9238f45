/**
 * The soak's judgement, without a model: a stream cut without [DONE] or an error event is a fault,
 * and a leak, an RSS climb or a slow /health fails its check. Without these the two-minute soak
 * could pass by never noticing what it is there to catch.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exchange } from "../../scripts/soak/exchange";
import { fit, summarize, slope, withoutLargestStep } from "../../scripts/soak/report";
import type { SoakRun } from "../../scripts/soak/run";
import { nodeWarnings } from "../../scripts/soak/targets";
import type { Plan } from "../../scripts/soak/traffic";

const chunk = (text: string, finish: string | null = null) => `data: ${JSON.stringify({ choices: [{ index: 0, text, finish_reason: finish }] })}\n\n`;

/** Answers as the body's `scenario` says. */
const SCENARIOS: Record<string, (res: import("node:http").ServerResponse) => void> = {
  done: (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end(chunk("a") + chunk("b") + chunk("", "length") + "data: [DONE]\n\n");
  },
  cut: (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end(chunk("a") + chunk("b"));
  },
  reset: (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(chunk("a"));
    setTimeout(() => res.socket?.destroy(), 20);
  },
  "error-event": (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end(chunk("a") + `data: ${JSON.stringify({ error: { message: "boom", type: "server_error", code: "engine_failed" } })}\n\n`);
  },
  "queue-full": (res) => {
    res.writeHead(429, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: "busy", type: "rate_limit_error", param: null, code: "queue_full" } }));
  },
  "not-json": (res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("<html>oops</html>");
  },
  slow: (res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(chunk("a"));
    const timer = setInterval(() => res.write(chunk("x")), 20);
    res.on("close", () => clearInterval(timer));
  },
};

let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => SCENARIOS[(JSON.parse(body) as { scenario: string }).scenario](res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const plan = (scenario: string, stream: boolean, extra: Partial<Plan> = {}): Plan => ({
  kind: "completion-stream",
  path: "/v1/completions",
  body: JSON.stringify({ scenario }),
  stream,
  expect: [200, 429],
  ...extra,
});

describe("exchange: what became of a request", () => {
  it("a stream that ends with [DONE] is complete, with its first-token and inter-token times", async () => {
    const o = await exchange(url, plan("done", true), 5_000);
    expect(o).toMatchObject({ status: 200, end: "complete", tokens: 2, expected: true });
    expect(o.ttftMs).toBeGreaterThan(0);
    expect(o.itlMs).toHaveLength(1);
  });

  it("a stream that stops without [DONE] or an error event is a cut, whether the body ends or the connection drops", async () => {
    expect(await exchange(url, plan("cut", true), 5_000)).toMatchObject({ end: "cut", detail: expect.stringMatching(/neither \[DONE\] nor an error event/) });
    expect((await exchange(url, plan("reset", true), 5_000)).end).toBe("cut");
  });

  it("an error event ends a stream cleanly; a 429 with an error body is an expected refusal", async () => {
    expect(await exchange(url, plan("error-event", true), 5_000)).toMatchObject({ end: "error-event", code: "engine_failed" });
    expect(await exchange(url, plan("queue-full", true), 5_000)).toMatchObject({ status: 429, end: "error-body", code: "queue_full", expected: true });
    expect(await exchange(url, plan("queue-full", false, { expect: [400] }), 5_000)).toMatchObject({ expected: false });
  });

  it("a 200 that is not the API's JSON is malformed", async () => {
    expect((await exchange(url, plan("not-json", false), 5_000)).end).toBe("malformed");
  });

  it("our own abort is never the server's fault; a stream with no end within the limit is a timeout", async () => {
    expect(await exchange(url, plan("slow", true, { abortAfterEvents: 3 }), 5_000)).toMatchObject({ end: "aborted", tokens: 3 });
    expect((await exchange(url, plan("slow", true), 300)).end).toBe("timeout");
  });
});

/** A clean run's record: idle gauges after the traffic, flat RSS, quick probes, a refused burst. */
function cleanRun(): SoakRun {
  const MiB = 2 ** 20;
  const idle = { edgelm_generations_running: 0, edgelm_generations_waiting: 0, edgelm_kv_blocks_reserved: 0, edgelm_kv_blocks_used: 0, edgelm_batch_live_sequences: 0 };
  return {
    target: "serve",
    options: { target: "serve", minutes: 1, concurrency: 1, seed: 1, warmupFraction: 1 / 3, burstEveryS: 10, queueDepth: 4, maxBatch: 4, streamStallMs: 3000, maxRequests: 10, settleMs: 1000, v8Flags: [] },
    startedAt: "2026-01-01T00:00:00Z",
    pid: 1,
    outcomes: [
      { kind: "completion-stream", stream: true, status: 200, end: "complete", itlMs: [1, 2], ttftMs: 5, tokens: 3, startMs: 0, durationMs: 10, expected: true },
      { kind: "burst", stream: false, status: 429, end: "error-body", code: "queue_full", itlMs: [], tokens: 0, startMs: 0, durationMs: 1, expected: true },
    ],
    samples: Array.from({ length: 61 }, (_, i) => ({ t: i * 1000, rss: 200 * MiB + (i % 2) * MiB, gauges: idle })),
    probes: Array.from({ length: 60 }, (_, i) => ({ t: i * 1000, ms: 5, status: 200 })),
    kvFilledMs: 2000,
    warmupEndMs: 20_000,
    trafficEndMs: 60_000,
    settled: { gauges: idle, ms: 10 },
    bursts: 1,
  };
}

const failing = (run: SoakRun) =>
  summarize(run)
    .checks.filter((c) => !c.ok)
    .map((c) => c.name);

describe("summarize: the checks", () => {
  it("a clean run passes every check", () => {
    expect(failing(cleanRun())).toEqual([]);
  });

  it("a sequence or KV block still held after the settle fails the leak check; so does a missing gauge", () => {
    const leaked = cleanRun();
    leaked.settled.gauges = { ...leaked.settled.gauges, edgelm_kv_blocks_used: 3, edgelm_batch_live_sequences: 1 };
    expect(failing(leaked)).toEqual(["no leaked sequences, KV blocks or queue entries after the settle"]);
    const blind = cleanRun();
    blind.settled.gauges = { edgelm_generations_running: 0 };
    expect(failing(blind)).toEqual(["no leaked sequences, KV blocks or queue entries after the settle"]);
  });

  it("a cut stream fails the completeness check", () => {
    const run = cleanRun();
    run.outcomes.push({ ...run.outcomes[0], end: "cut", detail: "stream ended after 2 tokens with neither [DONE] nor an error event" });
    expect(failing(run)).toEqual(["every response complete or cleanly errored"]);
  });

  it("RSS that climbs after the warm-up fails both memory checks; a KV cache never filled fails them too", () => {
    const climbing = cleanRun();
    climbing.samples = climbing.samples.map((s) => ({ ...s, rss: s.rss + s.t * 1000 }));
    expect(failing(climbing)).toEqual(["RSS at the end within the warm-up's + max(5%, 16 MiB)", "RSS slope after warm-up ≤ 1 MiB/min"]);
    const unfilled = cleanRun();
    unfilled.kvFilledMs = undefined;
    expect(failing(unfilled)).toEqual(["RSS at the end within the warm-up's + max(5%, 16 MiB)", "RSS slope after warm-up ≤ 1 MiB/min"]);
  });

  it("a Node process warning from serve (e.g. a listener leak) fails its check", () => {
    const run = cleanRun();
    run.warnings = ["(node:123) MaxListenersExceededWarning: Possible EventEmitter memory leak detected. 11 close listeners added to [ServerResponse]."];
    expect(failing(run)).toEqual(["no process warnings from the server"]);
    expect(summarize(run).checks.find((c) => !c.ok)!.detail).toMatch(/^1, first: \(node:123\) MaxListenersExceededWarning/);
  });

  it("the warnings on a stream are Node's own lines, whole, however the chunks split them", () => {
    const stream = new PassThrough();
    const found = nodeWarnings(stream);
    stream.write("edgelm serve: listening on http://127.0.0.1:1, model x\n(node:42) MaxListenersEx");
    stream.write("ceededWarning: 11 close listeners\nnot (node:1) Warning: inside a line\n(node:42) DeprecationWarning: old\n");
    expect(found).toEqual(["(node:42) MaxListenersExceededWarning: 11 close listeners", "(node:42) DeprecationWarning: old"]);
  });

  it("one /health probe over 2 s fails availability", () => {
    const run = cleanRun();
    run.probes[30] = { t: 30_000, ms: 2_500, status: 200 };
    expect(failing(run)).toEqual(["/health answered every probe within 2 s"]);
  });

  it("the slope test reads through a GC sawtooth but not through a leak", () => {
    const MiB = 2 ** 20;
    // One sample a second for a minute; a 6 MiB sawtooth with a 17 s period.
    const series = (leakPerMin: number) => Array.from({ length: 60 }, (_, i) => ({ x: i / 60, y: 150 * MiB + ((i % 17) / 17) * 6 * MiB + leakPerMin * (i / 60) }));
    const flat = fit(series(0));
    expect(flat.slope - 2 * flat.se).toBeLessThanOrEqual(MiB);
    const leak = fit(series(8 * MiB));
    expect(leak.slope - 2 * leak.se).toBeGreaterThan(MiB);
  });

  it("one step of new memory is not a slope, a leak with a step in it still is", () => {
    const MiB = 2 ** 20;
    // Two minutes of one sample a second: ±0.3 MiB of noise, a 2.5 MiB step at 75 s, and a leak.
    const series = (leakPerMin: number) =>
      Array.from({ length: 120 }, (_, i) => ({ x: i / 60, y: 115 * MiB + (((i * 7) % 5) - 2) * 0.15 * MiB + (i >= 75 ? 2.5 * MiB : 0) + leakPerMin * (i / 60) }));
    const raw = fit(series(0));
    expect(raw.slope - 2 * raw.se).toBeGreaterThan(MiB); // what the plain fit says of the step
    const stepped = fit(withoutLargestStep(series(0)));
    expect(stepped.slope - 2 * stepped.se).toBeLessThanOrEqual(MiB);
    const leak = fit(withoutLargestStep(series(3 * MiB)));
    expect(leak.slope - 2 * leak.se).toBeGreaterThan(MiB);
  });

  it("least squares: the slope of a line is its slope", () => {
    expect(slope([0, 1, 2, 3].map((x) => ({ x, y: 3 * x + 1 })))).toBeCloseTo(3);
  });
});
