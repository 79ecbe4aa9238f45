/**
 * The per-request subrequest/invocation check of the sharded coordinator (src/worker/shard-admission.ts):
 * the worst-case counts, what fits, the refusal and the smaller default.
 */
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/api/errors";
import { maxTokensThatFit, parseShardLimits, requestCounts, shardAdmissionCheck } from "../../src/worker/shard-admission";

const stream = { shards: 6, transport: "stream" as const, prefillChunk: 8 };
const rpc = { ...stream, transport: "rpc" as const };
const limits = { subrequests: 50, invocations: 32 };
const ask = (promptTokens: number, maxTokens: number, maxTokensGiven = true) => ({ endpoint: "completions" as const, promptTokens, maxTokens, maxTokensParam: "max_tokens", maxTokensGiven });

describe("sharded request counts", () => {
  it("stream: one invocation per shard; rpc: one per shard per forward pass; reads at most one per token", () => {
    // 20 prompt tokens = 3 prefill passes, then 9 decode passes.
    expect(requestCounts(stream, 20, 10)).toEqual({ invocations: 6, subrequests: 6 + 20 + 9 });
    expect(requestCounts(rpc, 20, 10)).toEqual({ invocations: 6 * 12, subrequests: 6 * 12 + 20 + 9 });
  });

  it("max tokens that fit: the largest with both counts inside the limits, 0 when none does", () => {
    expect(maxTokensThatFit(stream, limits, 20)).toBe(25); // 6 + 20 + 24 = 50
    expect(maxTokensThatFit(stream, limits, 44)).toBe(1);
    expect(maxTokensThatFit(stream, limits, 45)).toBe(0);
    expect(maxTokensThatFit(rpc, limits, 8)).toBe(5); // 6 × (1 + 4) = 30 invocations; 6 × 6 = 36 > 32
  });
});

describe("shard admission", () => {
  const check = shardAdmissionCheck(stream, limits);
  it("admits what fits, unchanged", () => {
    expect(check(ask(20, 25))).toBeUndefined();
  });
  it("refuses a max_tokens the client chose with a 400 that names the limit and what fits", () => {
    let err: unknown;
    try {
      check(ask(20, 26));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "subrequest_limit_exceeded", param: "max_tokens" });
    expect((err as Error).message).toMatch(/could need 51 subrequests and 6 Worker invocations.*more than the 50 subrequests and 32 invocations.*set max_tokens to at most 25/);
  });
  it("gives a defaulted max_tokens what fits, and refuses a prompt that alone does not fit", () => {
    expect(check(ask(20, 256, false))).toEqual({ maxTokens: 25 });
    expect(() => check(ask(45, 16, false))).toThrow(/shorten the prompt/);
  });
  it("reads the limits from vars, defaulting to the Free plan's, and rejects nonsense", () => {
    expect(parseShardLimits({})).toEqual({ subrequests: 10_000, invocations: 32 });
    expect(parseShardLimits({ SUBREQUEST_LIMIT: "1000", SHARD_INVOCATION_LIMIT: "32" })).toEqual({ subrequests: 1000, invocations: 32 });
    expect(() => parseShardLimits({ SUBREQUEST_LIMIT: "0" })).toThrow(/SUBREQUEST_LIMIT must be a positive integer/);
  });
});
