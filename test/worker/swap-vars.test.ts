/**
 * The swap's vars and its memory arithmetic, without workerd: defaults, a bad value names its var,
 * and two engines fit only when both together stay within MEMORY_LIMIT_MB.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/worker/env";
import { swapFit } from "../../src/worker/swap-memory";
import type { Engine } from "../../src/model/engine";

const MIB = 2 ** 20;
const engineOf = (bytes?: number) => ({ memoryBytes: bytes === undefined ? undefined : () => bytes }) as unknown as Engine;

describe("model swap vars", () => {
  it("defaults: no pointer, a look every 30 s, 128 MiB; a pointer key is trimmed", () => {
    expect(parseConfig({})).toMatchObject({ modelPointer: undefined, modelPointerPollS: 30, memoryLimitMB: 128 });
    expect(parseConfig({ MODEL_POINTER: " current-model ", MODEL_POINTER_POLL_S: "5", MEMORY_LIMIT_MB: 96 })).toMatchObject({ modelPointer: "current-model", modelPointerPollS: 5, memoryLimitMB: 96 });
  });

  it("a bad value is an error naming the var", () => {
    expect(() => parseConfig({ MEMORY_LIMIT_MB: "0" })).toThrow(/var MEMORY_LIMIT_MB must be a number ≥ 1, got "0"/);
    expect(() => parseConfig({ MODEL_POINTER_POLL_S: "soon" })).toThrow(/var MODEL_POINTER_POLL_S must be a number ≥ 1/);
  });
});

describe("swapFit", () => {
  it("fits when the serving engine and the new one together stay within the limit", () => {
    expect(swapFit(60 * MIB, engineOf(60 * MIB), 128)).toEqual({ fits: true, needBytes: 60 * MIB, heldBytes: 60 * MIB, limitBytes: 128 * MIB });
    expect(swapFit(70 * MIB, engineOf(60 * MIB), 128).fits).toBe(false);
    expect(swapFit(128 * MIB, undefined, 128)).toMatchObject({ fits: true, heldBytes: 0 });
  });

  it("an engine that cannot say what it holds counts as large as the new one", () => {
    expect(swapFit(70 * MIB, engineOf(), 128)).toMatchObject({ fits: false, heldBytes: 70 * MIB });
    expect(swapFit(60 * MIB, engineOf(), 128)).toMatchObject({ fits: true, heldBytes: 60 * MIB });
  });
});
