/**
 * Per-key rate limits across isolates: two Workers (two workerd services, so two isolates with
 * their own leases, queues and models) in one Miniflare, the second binding the first's
 * RateLimiter class through `scriptName`, so both reach the same object per key. The buckets are
 * a minute long and each phase takes well under a second after warm-up, so refill cannot blur the
 * counts; nothing here measures time.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleWorker, putFile, requestLines, testModelPath, waitHealthy, wranglerCompat } from "./harness";
import { localWorkerdV8Flags, useWorkerdV8Flags } from "./v8-flags";

const KEYS = { "sk-limits-free-000001": "free", "sk-limits-pro-0000002": "pro", "sk-limits-warm-000003": "warm" };
const [FREE, PRO, WARM] = Object.keys(KEYS);
const MODEL = "edgelm-tiny";
const LIMITS = { free: { rpm: 4, slice: 0.5 }, pro: { rpm: 1000, tpm: 400 } };
const VARS = {
  MODEL_KEY: "models/tiny-q4_0.gguf",
  MODEL_ID: MODEL,
  LOAD_WAIT_MS: "60000",
  CORS_ORIGINS: "https://app.example",
  API_KEYS: JSON.stringify(KEYS),
  RATE_LIMITS: JSON.stringify(LIMITS),
};

let mf: Miniflare;
let urls: { a: string; b: string };
let persist: string;
let output = "";
const bodies: string[] = [];

beforeAll(async () => {
  useWorkerdV8Flags(localWorkerdV8Flags());
  persist = mkdtempSync(join(tmpdir(), "edgelm-limits-"));
  const modules = await bundleWorker();
  const common = { modules, ...wranglerCompat(), bindings: VARS, r2Buckets: { MODELS: "edgelm-models" }, unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] };
  const capture = (s: Readable) => s.on("data", (d) => (output += String(d)));
  mf = new Miniflare({
    workers: [
      { name: "edgelm-a", ...common, durableObjects: { RATE_LIMITER: "RateLimiter" } },
      { name: "edgelm-b", ...common, durableObjects: { RATE_LIMITER: { className: "RateLimiter", scriptName: "edgelm-a" } } },
    ],
    durableObjectsPersist: persist,
    host: "127.0.0.1",
    port: 0,
    handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
      capture(stdout);
      capture(stderr);
    },
  });
  await mf.ready;
  await putFile(await mf.getR2Bucket("MODELS", "edgelm-a"), VARS.MODEL_KEY, await testModelPath());
  const direct = async (name: string) => (await mf.unsafeGetDirectURL(name)).toString().replace(/\/$/, "");
  urls = { a: await direct("edgelm-a"), b: await direct("edgelm-b") };
  await Promise.all([waitHealthy({ url: urls.a }), waitHealthy({ url: urls.b })]);
}, 180_000);

afterAll(async () => {
  await mf?.dispose();
  if (persist) rmSync(persist, { recursive: true, force: true });
});

async function complete(at: "a" | "b", key: string, body: Record<string, unknown>): Promise<{ res: Response; json: any }> {
  const res = await fetch(`${urls[at]}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, origin: "https://app.example" },
    body: JSON.stringify({ model: MODEL, temperature: 0, ...body }),
  });
  const text = await res.text();
  bodies.push(text, JSON.stringify([...res.headers]));
  return { res, json: JSON.parse(text) };
}

const header = (res: Response, name: string) => res.headers.get(name);

describe("rate limits across two isolates", () => {
  it("the two services are separate isolates: each loaded the model itself", () => {
    expect(output.match(/loading models\/tiny-q4_0\.gguf: 100%/g)?.length).toBe(2);
  });

  it("rpm N: N requests spread over both isolates pass, the next gets 429 rate_limit_exceeded with the headers", async () => {
    const order = ["a", "b", "a", "b"] as const;
    for (const at of order) {
      const { res } = await complete(at, FREE, { prompt: "Hi", max_tokens: 1 });
      expect(res.status, at).toBe(200);
      expect(header(res, "x-ratelimit-limit-requests")).toBe("4");
      expect(Number(header(res, "x-ratelimit-remaining-requests"))).toBeLessThan(4);
      expect(header(res, "x-ratelimit-reset-requests")).toMatch(/^(\d+ms|(\d+m)?[\d.]+s)$/);
      // No tpm for this tier: no token headers.
      expect(header(res, "x-ratelimit-limit-tokens")).toBeNull();
    }
    for (const at of ["a", "b"] as const) {
      const { res, json } = await complete(at, FREE, { prompt: "Hi", max_tokens: 1 });
      expect(res.status, at).toBe(429);
      expect(json.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
      expect(json.error.message).toMatch(/tier free: 4 requests per minute, 0 left/);
      expect(Number(header(res, "retry-after"))).toBeGreaterThanOrEqual(1);
      expect(header(res, "x-ratelimit-limit-requests")).toBe("4");
      expect(header(res, "x-ratelimit-remaining-requests")).toBe("0");
      expect(header(res, "x-ratelimit-reset-requests")).toMatch(/s$/);
      expect(header(res, "x-edgelm-route")).toBe("none");
      expect(header(res, "x-edgelm-route-reason")).toBe("rate_limited");
      const exposed = header(res, "access-control-expose-headers") ?? "";
      for (const h of ["retry-after", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]) {
        expect(exposed.split(/,\s*/)).toContain(h);
      }
    }
    // Another key has its own bucket.
    expect((await complete("a", WARM, { prompt: "Hi", max_tokens: 1 })).res.status).toBe(200);
  });

  it("tokens: a reservation beyond what is left gets 429; the refund of a short generation makes room for the next", async () => {
    // The tiny model's first token at temperature 0, used as a stop string: a generation asked for
    // 300 tokens ends after one, and 299 reserved tokens come back.
    const probe = await complete("a", WARM, { prompt: "Hello", max_tokens: 1 });
    const first: string = probe.json.choices[0].text;
    expect(first.length).toBeGreaterThan(0);
    const short = { prompt: "Hello", max_tokens: 300, stop: [first] };

    const one = await complete("a", PRO, short);
    expect(one.res.status).toBe(200);
    expect(one.json.usage.completion_tokens).toBeLessThanOrEqual(1);
    expect(header(one.res, "x-ratelimit-limit-tokens")).toBe("400");
    expect(Number(header(one.res, "x-ratelimit-remaining-tokens"))).toBeLessThan(400 - 300);

    // The other isolate holds no lease, and the limiter has less left than prompt + 300.
    const two = await complete("b", PRO, short);
    expect(two.res.status).toBe(429);
    expect(two.json.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(two.json.error.message).toMatch(/tier pro: 400 tokens per minute, \d+ left, and this request reserves \d+ \(prompt \+ max_tokens\)/);
    expect(Number(header(two.res, "x-ratelimit-remaining-tokens"))).toBeLessThan(300);
    expect(header(two.res, "retry-after")).toMatch(/^\d+$/);

    // The first isolate got the unused tokens back when the first request ended.
    const three = await complete("a", PRO, short);
    expect(three.res.status).toBe(200);

    // More than the whole minute's tokens can never pass.
    const huge = await complete("b", PRO, { prompt: "Hello", max_tokens: 500 });
    expect(huge.res.status).toBe(429);
    expect(huge.json.error).toMatchObject({ code: "rate_limit_exceeded", param: "max_tokens" });
  });

  it("no key in the limiter's storage, the logs or any response", async () => {
    const files: string[] = [];
    const walk = (d: string) => readdirSync(d).forEach((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : files.push(join(d, f))));
    walk(persist);
    expect(files.length).toBeGreaterThan(0);
    for (const key of Object.keys(KEYS)) {
      for (const f of files) expect(readFileSync(f).includes(key), f).toBe(false);
      expect(output).not.toContain(key);
      for (const b of bodies) expect(b).not.toContain(key);
    }
    expect(requestLines(output).some((l) => l.method === "POST" && l.path === "/v1/completions" && l.status === 429 && l.tier === "free")).toBe(true);
  });
});
