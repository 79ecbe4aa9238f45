/**
 * The sharded coordinator before its plan is in R2 (the state between `wrangler deploy` and the
 * upload): /health says the plan is missing and when the next attempt is, and once the plan is
 * uploaded a request after that pause loads it, with no restart and no fixed 30 s wait.
 */
import { afterAll, describe, expect, it, vi } from "vitest";
import { planKeyOf } from "../../src/shard/deploy";
import { synthGGUF } from "../../weights-tools/fixtures";
import { complete, startSharded, type ShardedUnderTest } from "./harness";

const KEY = "models/tiny-q4_0.gguf";
let s: ShardedUnderTest | undefined;

afterAll(async () => {
  await s?.close();
});

describe("sharded Worker: the plan uploaded after the first /health", () => {
  it("fails with backoff while the plan is missing, then serves once it is there", async () => {
    s = await startSharded({
      model: await synthGGUF("tiny", "q4_0"),
      key: KEY,
      budgetMb: 19,
      context: 128,
      withholdPlan: true,
      vars: { MODEL_ID: "edgelm-tiny", LOAD_WAIT_MS: "60000", CPU_BUDGET_MS: "0", LOAD_RETRY_MS: "200", LOAD_RETRY_MAX_MS: "400" },
    });
    const url = s.url;
    const failed = await vi.waitFor(
      async () => {
        const res = await fetch(`${url}/health`);
        const body = (await res.json()) as any;
        expect(body.status).toBe("failed");
        return { res, body };
      },
      { timeout: 20_000, interval: 50 },
    );
    expect(failed.res.status).toBe(503);
    expect(failed.body).toMatchObject({ retry: "backoff", attempts: 1, reason: expect.stringMatching(/the shard plan ".*plan\.json" is not in the R2 bucket/) });
    expect(failed.body.next_attempt_at).toEqual(expect.any(String));

    const bucket = await s.mf.getR2Bucket("MODELS", "edgelm");
    await bucket.put(planKeyOf(KEY), JSON.stringify(s.plan));
    await vi.waitFor(
      async () => {
        const res = await fetch(`${url}/health`);
        expect(res.status, await res.text()).toBe(200);
      },
      { timeout: 60_000, interval: 100 },
    );
    const r = await complete(url, "edgelm-tiny", { prompt: "Hello", max_tokens: 2, temperature: 0 });
    expect(r.status).toBe(200);
    expect(r.json.usage.completion_tokens).toBe(2);
  }, 120_000);
});
