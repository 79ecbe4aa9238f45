/** The Worker's batching vars without workerd: defaults, and a bad value is an error naming its var. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/worker/env";

describe("batching vars", () => {
  it("defaults: four generations, 64 rows a step, the engine's own KV budget", () => {
    expect(parseConfig({})).toMatchObject({ maxBatch: 4, maxBatchTokens: 64, kvBudgetMB: undefined });
    expect(parseConfig({ MAX_BATCH: "1", MAX_BATCH_TOKENS: " 16 ", KV_BUDGET_MB: "12.5" })).toMatchObject({ maxBatch: 1, maxBatchTokens: 16, kvBudgetMB: 12.5 });
    // A MAX_BATCH above 64 raises the default row count with it: every sequence needs a row.
    expect(parseConfig({ MAX_BATCH: "100" })).toMatchObject({ maxBatch: 100, maxBatchTokens: 100 });
  });

  it("a bad value is an error naming the var", () => {
    expect(() => parseConfig({ MAX_BATCH: "0" })).toThrow(/var MAX_BATCH must be an integer ≥ 1, got "0"/);
    expect(() => parseConfig({ MAX_BATCH: "2.5" })).toThrow(/var MAX_BATCH must be an integer/);
    expect(() => parseConfig({ MAX_BATCH: "8", MAX_BATCH_TOKENS: "4" })).toThrow(/var MAX_BATCH_TOKENS must be at least MAX_BATCH \(8\), got 4/);
    expect(() => parseConfig({ MAX_BATCH_TOKENS: "many" })).toThrow(/var MAX_BATCH_TOKENS must be an integer ≥ 1/);
    expect(() => parseConfig({ KV_BUDGET_MB: "0" })).toThrow(/var KV_BUDGET_MB must be a number of MiB > 0, got "0"/);
    expect(() => parseConfig({ KV_BUDGET_MB: "lots" })).toThrow(/var KV_BUDGET_MB must be a number of MiB > 0, got "lots"/);
  });
});
