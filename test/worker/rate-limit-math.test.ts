/**
 * The rate limits' arithmetic without workerd: the token bucket (refill, take, give back), the
 * limiter's ledger (admit, refuse, lease, hand back), one isolate's leases against a ledger held in
 * the test, the RATE_LIMITS var, and the headers and 429. Clocks are numbers the test moves.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/worker/env";
import { parseRateLimits } from "../../src/worker/rate-limit-config";
import { formatDuration, rateLimitError, rateLimitHeaders } from "../../src/worker/rate-limit-headers";
import { LEASE_MS, lease, type LeaseAnswer, type LeaseCall, type Ledger } from "../../src/worker/rate-limit-ledger";
import { LeaseCache } from "../../src/worker/rate-limit-lease";
import { limiterName } from "../../src/worker/rate-limit";
import { available, fullBucket, giveBack, msUntil, msUntilFull, refill, resize, take } from "../../src/worker/token-bucket";

describe("token bucket", () => {
  it("refills at capacity per minute, never above capacity, never backwards", () => {
    const b = { capacity: 60, level: 0, at: 1000 };
    expect(available(b, 1000)).toBe(0);
    expect(available(b, 1000 + 10_000)).toBe(10);
    expect(available(b, 1000 + 60_000)).toBe(60);
    expect(available(b, 1000 + 600_000)).toBe(60);
    expect(refill(b, 500)).toEqual(b);
  });

  it("takes only what is there; gives back up to capacity", () => {
    const b = fullBucket(10, 0);
    const t = take(b, 7, 0)!;
    expect(available(t, 0)).toBe(3);
    expect(take(t, 4, 0)).toBeUndefined();
    expect(available(giveBack(t, 5, 0), 0)).toBe(8);
    expect(available(giveBack(t, 50, 0), 0)).toBe(10);
    expect(available(giveBack(t, -5, 0), 0)).toBe(3);
  });

  it("says how long until n are there, and until full; Infinity past capacity", () => {
    const b = { capacity: 60, level: 0, at: 0 };
    expect(msUntil(b, 1, 0)).toBe(1000);
    expect(msUntil(b, 3, 500)).toBe(2500);
    expect(msUntil(b, 0, 0)).toBe(0);
    expect(msUntil(b, 61, 0)).toBe(Infinity);
    expect(msUntilFull(b, 30_000)).toBe(30_000);
  });

  it("a new limit keeps what is left, up to the new capacity", () => {
    const b = { capacity: 100, level: 40, at: 0 };
    expect(resize(b, 20, 0)).toEqual({ capacity: 20, level: 20, at: 0 });
    expect(resize(b, 1000, 0)).toEqual({ capacity: 1000, level: 40, at: 0 });
  });
});

const none = { requests: 0, tokens: 0 };

/** A ledger held by the test, called as a Durable Object would be, with the test's clock. */
function fakeLimiter(clock: { t: number }) {
  let ledger: Ledger | undefined;
  const calls: LeaseCall[] = [];
  const call = async (_id: string, c: LeaseCall): Promise<LeaseAnswer> => {
    calls.push(structuredClone(c));
    const out = lease(ledger, c, clock.t);
    ledger = out.ledger;
    // What crosses the wire is JSON.
    return JSON.parse(JSON.stringify(out.answer));
  };
  return { call, calls, ledger: () => ledger };
}

describe("the limiter's ledger", () => {
  it("admits while the buckets hold a request and its tokens, then refuses with the wait", () => {
    const limits = { rpm: 3, tpm: 1000, slice: 0 };
    let l: Ledger | undefined;
    const answers = [];
    for (let i = 0; i < 4; i++) {
      const out = lease(l, { limits, returned: none, need: 10 }, 0);
      l = out.ledger;
      answers.push(out.answer);
    }
    expect(answers.map((a) => a.ok)).toEqual([true, true, true, false]);
    expect(answers[3]).toMatchObject({ ok: false, dimension: "requests", retryAfterMs: 20_000 });
    expect(answers[2].status).toEqual({ requests: { limit: 3, remaining: 0, resetMs: 60_000 }, tokens: { limit: 1000, remaining: 970, resetMs: 1800 } });
  });

  it("refuses a reservation larger than what is left (waiting helps) or than the limit (it never will)", () => {
    const limits = { tpm: 100, slice: 0 };
    const first = lease(undefined, { limits, returned: none, need: 80 }, 0);
    expect(first.answer.ok).toBe(true);
    const second = lease(first.ledger, { limits, returned: none, need: 30 }, 0);
    expect(second.answer).toMatchObject({ ok: false, dimension: "tokens", need: 30, retryAfterMs: 6000 });
    expect(lease(first.ledger, { limits, returned: none, need: 101 }, 0).answer).toMatchObject({ ok: false, retryAfterMs: null });
    expect(JSON.stringify(second.answer)).not.toContain("requests");
  });

  it("a refund handed back makes room at once", () => {
    const limits = { tpm: 100, slice: 0 };
    const first = lease(undefined, { limits, returned: none, need: 90 }, 0);
    expect(lease(first.ledger, { limits, returned: none, need: 50 }, 0).answer.ok).toBe(false);
    const back = lease(first.ledger, { limits, returned: { requests: 0, tokens: 80 } }, 0);
    expect(back.answer).toMatchObject({ ok: true, grant: { requests: 0, tokens: 0 } });
    expect(lease(back.ledger, { limits, returned: none, need: 50 }, 0).answer.ok).toBe(true);
  });

  it("leases a slice beyond the request, never more than half of what is left, and takes it out of the bucket", () => {
    const limits = { rpm: 100, tpm: 10_000, slice: 0.1 };
    const a = lease(undefined, { limits, returned: none, need: 100 }, 0);
    expect(a.answer).toMatchObject({ ok: true, grant: { requests: 10, tokens: 1000 }, ttlMs: LEASE_MS });
    expect(a.answer.status.requests?.remaining).toBe(89);
    expect(a.answer.status.tokens?.remaining).toBe(8900);
    const low = lease({ requests: { capacity: 100, level: 5, at: 0 } }, { limits: { rpm: 100, slice: 0.1 }, returned: none, need: 1 }, 0);
    expect(low.answer).toMatchObject({ ok: true, grant: { requests: 2, tokens: null } });
    expect(low.answer.status.requests?.remaining).toBe(2);
  });

  it("an unlisted dimension is not limited (null grant), and leaving a limit out drops its bucket", () => {
    const a = lease(undefined, { limits: { rpm: 10, slice: 0 }, returned: none, need: 1e9 }, 0);
    expect(a.answer).toMatchObject({ ok: true, grant: { requests: 0, tokens: null } });
    expect(a.answer.status.tokens).toBeUndefined();
    expect(lease(a.ledger, { limits: { tpm: 10, slice: 0 }, returned: none, need: 1 }, 0).ledger.requests).toBeUndefined();
  });
});

describe("an isolate's leases", () => {
  it("spends a lease locally, goes back when it runs out, and hands back what is left when it expires", async () => {
    const clock = { t: 0 };
    const d = fakeLimiter(clock);
    const cache = new LeaseCache(d.call, () => clock.t);
    const limits = { rpm: 100, tpm: 100_000, slice: 0.05 };
    for (let i = 0; i < 6; i++) expect((await cache.admit("k", limits, 10)).ok).toBe(true);
    // One call granted this request and 5 more.
    expect(d.calls.length).toBe(1);
    const seventh = await cache.admit("k", limits, 10);
    expect(d.calls.length).toBe(2);
    expect(seventh).toMatchObject({ ok: true, status: { requests: { limit: 100, remaining: 93 } } });
    clock.t += LEASE_MS;
    await cache.admit("k", limits, 10);
    expect(d.calls.length).toBe(3);
    expect(d.calls[2].returned).toEqual({ requests: 5, tokens: 5000 - 0 });
  });

  it("refunds into a live lease; without one, hands the refund back to the limiter at once", async () => {
    const clock = { t: 0 };
    const d = fakeLimiter(clock);
    const cache = new LeaseCache(d.call, () => clock.t);
    const limits = { tpm: 1000, slice: 0 };
    expect((await cache.admit("k", limits, 900)).ok).toBe(true);
    // slice 0: no lease to hold the refund, so it goes to the limiter.
    const flush = cache.settle("k", limits, 900, 100);
    expect(flush).toBeDefined();
    await flush;
    expect(d.calls.at(-1)).toEqual({ limits, returned: { requests: 0, tokens: 800 } });
    expect(available(d.ledger()!.tokens!, clock.t)).toBe(900);

    const leased = { tpm: 1000, slice: 0.5 };
    const c2 = new LeaseCache(fakeLimiter(clock).call, () => clock.t);
    expect((await c2.admit("k", leased, 600)).ok).toBe(true);
    // Lease: min(500, 400 / 2) = 200 tokens. 600 more do not fit in it, nor in the bucket's 200 ...
    expect((await c2.admit("k", leased, 600)).ok).toBe(false);
    // ... until the first request's unused 550 come back; with no live lease they reach the limiter.
    await c2.settle("k", leased, 600, 50);
    expect((await c2.admit("k", leased, 600)).ok).toBe(true);
  });

  it("a lease live at the refund keeps it: the next request is admitted with no call", async () => {
    const clock = { t: 0 };
    const d = fakeLimiter(clock);
    const cache = new LeaseCache(d.call, () => clock.t);
    const limits = { rpm: 100, tpm: 1000, slice: 0.1 };
    expect((await cache.admit("k", limits, 700)).ok).toBe(true);
    expect(cache.settle("k", limits, 700, 10)).toBeUndefined();
    expect((await cache.admit("k", limits, 700)).ok).toBe(true);
    expect(d.calls.length).toBe(1);
  });

  it("refusals come from the limiter; a limiter that fails keeps the tokens owed for the next call", async () => {
    const clock = { t: 0 };
    const d = fakeLimiter(clock);
    let down = false;
    const cache = new LeaseCache((id, c) => (down ? Promise.reject(new Error("down")) : d.call(id, c)), () => clock.t);
    const limits = { rpm: 2, tpm: 100, slice: 0 };
    expect((await cache.admit("k", limits, 60)).ok).toBe(true);
    const refused = await cache.admit("k", limits, 60);
    expect(refused).toMatchObject({ ok: false, answer: { dimension: "tokens", need: 60 } });
    down = true;
    await expect(cache.settle("k", limits, 60, 0)).resolves.toBeUndefined();
    down = false;
    expect((await cache.admit("k", limits, 60)).ok).toBe(true);
    expect(d.calls.at(-1)?.returned.tokens).toBe(60);
  });

  it("two isolates over one limiter: exactly rpm requests pass, whatever the order", async () => {
    for (const order of ["abab", "aaab", "abbb", "aabb"]) {
      const clock = { t: 0 };
      const d = fakeLimiter(clock);
      const isolates = { a: new LeaseCache(d.call, () => clock.t), b: new LeaseCache(d.call, () => clock.t) };
      const limits = { rpm: 4, slice: 0.5 };
      const seq = [...order, ..."ab"].map((k) => isolates[k as "a" | "b"]);
      const passed = [];
      for (const iso of seq) passed.push((await iso.admit("k", limits, 1)).ok);
      // Never more than the limit; fewer only while a lease sits unspent in the other isolate.
      expect(passed.filter(Boolean).length).toBeLessThanOrEqual(4);
      if (order === "abab") expect(passed).toEqual([true, true, true, true, false, false]);
    }
  });
});

describe("RATE_LIMITS", () => {
  it("parses tiers; unset is no limits; mistakes name the var and the tier", () => {
    expect(parseRateLimits(undefined)).toBeUndefined();
    expect(parseRateLimits(" ")).toBeUndefined();
    expect(parseRateLimits('{"free":{"rpm":60,"tpm":20000},"pro":{"tpm":5,"slice":0}}')).toEqual(
      new Map([
        ["free", { rpm: 60, tpm: 20000, slice: 0.1 }],
        ["pro", { rpm: undefined, tpm: 5, slice: 0 }],
      ]),
    );
    for (const bad of ["{", "[]", '{"free":{}}', '{"free":{"rpm":0}}', '{"free":{"rpm":1.5}}', '{"free":{"rpm":1,"slice":2}}', '{"free":{"rph":1}}']) {
      expect(() => parseRateLimits(bad), bad).toThrow(ConfigError);
      expect(() => parseRateLimits(bad)).toThrow(/RATE_LIMITS/);
    }
  });
});

describe("headers and the 429", () => {
  it("writes durations as OpenAI does", () => {
    expect(formatDuration(20)).toBe("20ms");
    expect(formatDuration(1000)).toBe("1s");
    expect(formatDuration(1500)).toBe("1.5s");
    expect(formatDuration(360_000)).toBe("6m0s");
    expect(formatDuration(61_000)).toBe("1m1s");
  });

  it("sets the x-ratelimit-* headers of each limited dimension", () => {
    const h = rateLimitHeaders({ requests: { limit: 60, remaining: 59, resetMs: 1000 } });
    expect(Object.fromEntries(h)).toEqual({ "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s" });
  });

  it("is a rate_limit_error 429 with retry-after, distinct from queue_full; too large says so", () => {
    const status = { tokens: { limit: 100, remaining: 20, resetMs: 48_000 } };
    const e = rateLimitError({ ok: false, dimension: "tokens", retryAfterMs: 1200, need: 30, status }, "free");
    expect(e).toMatchObject({ status: 429, type: "rate_limit_error", code: "rate_limit_exceeded", retryAfter: 2 });
    expect(e.message).toMatch(/tier free: 100 tokens per minute, 20 left, and this request reserves 30/);
    const big = rateLimitError({ ok: false, dimension: "tokens", retryAfterMs: null, need: 300, status }, "free");
    expect(big).toMatchObject({ status: 429, param: "max_tokens" });
    expect(big.message).toMatch(/more than tier free's limit of 100 tokens per minute/);
  });

  it("names a key's limiter by its hash, never the key", async () => {
    const name = await limiterName("sk-secret-key-0001");
    expect(name).toMatch(/^key-sha256:[0-9a-f]{64}$/);
    expect(name).not.toContain("sk-secret");
    expect(await limiterName("sk-secret-key-0001")).toBe(name);
    expect(await limiterName("sk-secret-key-0002")).not.toBe(name);
  });
});
