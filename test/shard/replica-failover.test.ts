/**
 * Replicas that fail over, and admission per replica, in real workerd (SHARD_REPLICAS = 2, the tiny
 * model in one layer shard and one head shard per replica):
 *   - replica 1's head shard never loads: keys of replica 1 are served by replica 0 with the tokens
 *     replica 0 gives its own keys, `x-edgelm-replica` (of the very first stream that fails over
 *     too) and the log line say so, /health marks replica 1 unhealthy; with both replicas broken, a
 *     clear error, no replica named, and no hang;
 *   - MAX_BATCH = 1: streams on different replicas decode at once, two on one replica take turns.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replicaFor } from "../../src/worker/shard-affinity";
import { synthGGUF } from "../../weights-tools/fixtures";
import { parseSSE } from "../api/helpers";
import { health, settledHealth, startSharded, type ShardedUnderTest } from "./harness";

const KEY = "models/tiny-q4_0.gguf";
const MODEL = "edgelm-tiny";
const VARS = { MODEL_ID: MODEL, QUEUE_DEPTH: "8", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", PREFILL_CHUNK_TOKENS: "8" };
const BUDGET_MB = 120;
const CONTEXT = 128;
/** No request may take longer: a hang fails the test. */
const BOUND_MS = 60_000;
const NEVER_LOADS = { TEST_LOAD_FAILURES: "always" };

/** Sessions known to land on replica 0 and on replica 1. */
const [S0, S1] = (() => {
  const keys = Array.from({ length: 16 }, (_, i) => `session-${i}`);
  return [keys.find((k) => replicaFor(k, 2) === 0)!, keys.find((k) => replicaFor(k, 2) === 1)!];
})();

interface Outcome {
  status: number;
  replica: string | null;
  text: string;
  done: boolean;
  error?: string;
}

async function post(url: string, session: string, body: Record<string, unknown>): Promise<Outcome> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-session-affinity": session },
    body: JSON.stringify({ model: MODEL, ...body }),
    signal: AbortSignal.timeout(BOUND_MS),
  });
  const raw = await res.text();
  const replica = res.headers.get("x-edgelm-replica");
  if (!body.stream) {
    const json = JSON.parse(raw);
    return { status: res.status, replica, text: json.choices?.[0]?.text ?? "", done: res.ok, error: json.error?.message };
  }
  const parsed = parseSSE(raw);
  const error = parsed.events.find((e) => e.error)?.error?.message;
  return { status: res.status, replica, text: parsed.events.map((e) => e.choices?.[0]?.text ?? "").join(""), done: parsed.done, error };
}

const BODY = { prompt: "The edge of the network", max_tokens: 10, temperature: 0.9, top_p: 0.95, seed: 7 };

describe("a replica whose shard cannot load (workerd)", () => {
  let half: ShardedUnderTest;
  let none: ShardedUnderTest;

  beforeAll(async () => {
    const model = await synthGGUF("tiny", "q4_0");
    [half, none] = await Promise.all([
      startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, replicas: 2, replicaShardVars: { 1: { 1: NEVER_LOADS } } }),
      startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: VARS, replicas: 2, shardVars: { 1: NEVER_LOADS } }),
    ]);
    for (const d of [half, none]) expect((await settledHealth(d.url)).status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([half?.close(), none?.close()]);
  });

  it("its keys are served by the next replica in their ranking, with the same tokens; /health marks it unhealthy", async () => {
    const own = await post(half.url, S0, BODY);
    expect(own).toMatchObject({ status: 200, replica: "0", done: true });
    // The first request of replica 1, streamed, meets the failed load at session open and moves
    // before any token; its headers wait for that, so they name the replica that served it: the one
    // whose forward calls are the stream's (one prefill chunk, then one per token after the first).
    const forwards = async () => (await health(half.url)).body.sharding.replicas.map((r: any) => r.forwards as number);
    const before = await forwards();
    const moved = await post(half.url, S1, { ...BODY, stream: true });
    const calls = (await forwards()).map((n: number, r: number) => n - before[r]);
    expect(calls, JSON.stringify(calls)).toEqual([BODY.max_tokens, 1]);
    expect(moved, moved.error).toMatchObject({ status: 200, replica: String(calls.indexOf(BODY.max_tokens)), done: true, text: own.text });
    expect(half.logs()).toContain(`"notes":["replica 0 by header, failover from 1"]`);
    const h = (await health(half.url)).body.sharding;
    expect(h.replicas.map((r: any) => r.healthy)).toEqual([true, false]);
    expect(h.shard_failures).toEqual([expect.objectContaining({ shard: 1, replica: 1 })]);
    // Later requests pass it over without trying it: streamed (the header leaves before the session opens), and the same tokens.
    const frames = h.replicas[1].shard_frames;
    const streamed = await post(half.url, S1, { ...BODY, stream: true });
    expect(streamed, streamed.error).toMatchObject({ status: 200, replica: "0", done: true, text: own.text });
    expect((await health(half.url)).body.sharding.replicas[1].shard_frames).toBe(frames);
  });

  it("every replica broken: the error of today (shard N failed to load), streamed or not, and no hang", async () => {
    const whole = await post(none.url, S1, BODY);
    expect(whole.status).toBeGreaterThanOrEqual(500);
    expect(`${whole.error}`).toMatch(/shard 1 failed to load/);
    const streamed = await post(none.url, S0, { ...BODY, stream: true });
    expect(streamed.done).toBe(false);
    expect(`${streamed.error}`).toMatch(/shard 1 failed to load/);
    // No replica served either: no header names one, and the log line says which were tried.
    expect([whole.replica, streamed.replica]).toEqual([null, null]);
    expect(none.logs()).toContain(`"notes":["no replica served (by header; tried 0, 1)"]`);
    const h = await health(none.url);
    expect(h.status).toBe(200);
    expect(h.body.sharding.replicas.map((r: any) => r.healthy)).toEqual([false, false]);
  });
});

describe("admission per replica: MAX_BATCH = 1, 2 replicas (workerd)", () => {
  let dep: ShardedUnderTest;

  beforeAll(async () => {
    const model = await synthGGUF("tiny", "q4_0");
    // A slow layer shard, so a stream of 8 tokens lasts long enough for another to start beside it.
    dep = await startSharded({ model, key: KEY, budgetMb: BUDGET_MB, context: CONTEXT, vars: { ...VARS, MAX_BATCH: "1" }, replicas: 2, shardVars: { 0: { TEST_RUN_DELAY_MS: "60" } } });
    expect((await settledHealth(dep.url)).status).toBe(200);
    // Load both pipelines before timing anything.
    await Promise.all([S0, S1].map((s) => post(dep.url, s, { prompt: "warm", max_tokens: 1 })));
  }, 120_000);

  afterAll(async () => {
    await dep?.close();
  });

  /** A stream's times (ms since `t0`) of its first token and its end. */
  async function timed(session: string, t0: number): Promise<{ first: number; end: number; replica: string | null }> {
    const res = await fetch(`${dep.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-session-affinity": session },
      body: JSON.stringify({ model: MODEL, prompt: "Once upon a time", max_tokens: 8, temperature: 0, stream: true }),
      signal: AbortSignal.timeout(BOUND_MS),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let seen = "";
    let first = -1;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += dec.decode(value, { stream: true });
      if (first < 0 && /"text":"[^"]/.test(seen)) first = Date.now() - t0;
    }
    expect(seen).toContain("[DONE]");
    return { first, end: Date.now() - t0, replica: res.headers.get("x-edgelm-replica") };
  }

  it("streams on different replicas decode at once: each has a token before either ends", async () => {
    const t0 = Date.now();
    const [a, b] = await Promise.all([timed(S0, t0), timed(S1, t0)]);
    expect([a.replica, b.replica]).toEqual(["0", "1"]);
    expect(a.first).toBeGreaterThan(0);
    expect(b.first).toBeGreaterThan(0);
    expect(Math.max(a.first, b.first), JSON.stringify({ a, b })).toBeLessThan(Math.min(a.end, b.end));
  });

  it("two streams on one replica take turns (never more than MAX_BATCH sequences in it); /health counts each replica", async () => {
    const t0 = Date.now();
    const [a, b] = await Promise.all([timed(S1, t0), timed(S1, t0)]);
    const [early, late] = a.first < b.first ? [a, b] : [b, a];
    expect(late.first, JSON.stringify({ a, b })).toBeGreaterThanOrEqual(early.end - 5);
    const h = (await health(dep.url)).body;
    expect(h.sharding.replicas.map((r: any) => [r.running, r.waiting])).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });
});
