/**
 * edgelm/local's up-front checks, without a browser: the SIMD probe is a real SIMD module (V8
 * validates it, and refuses it once SIMD is taken away), and a failed memory grow becomes the
 * no_memory error a user can act on.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { memoryError, missingCapability } from "../../src/local/capabilities";

afterEach(() => vi.restoreAllMocks());

describe("edgelm/local capabilities", () => {
  it("passes where WebAssembly has SIMD, and names the missing feature where it has not", () => {
    expect(missingCapability()).toBeUndefined();
    // A browser without SIMD rejects the probe's v128.const: validate answers false there.
    vi.spyOn(WebAssembly, "validate").mockReturnValue(false);
    expect(missingCapability()).toMatchObject({ code: "no_wasm_simd", message: expect.stringMatching(/no SIMD.*use the server/) });
  });

  it("turns a real failed memory grow into no_memory, and leaves other errors alone", () => {
    let grown: unknown;
    try {
      new WebAssembly.Memory({ initial: 1, maximum: 2 }).grow(10);
    } catch (err) {
      grown = err;
    }
    expect(grown).toBeInstanceOf(RangeError);
    expect(memoryError(grown)).toMatchObject({ code: "no_memory", message: expect.stringMatching(/could not provide it.*kvBudgetMB/) });
    expect(memoryError(new Error("cannot grow memory to 70000 pages (4375.0 MiB)"))?.message).toMatch(/needs 4375 MiB/);
    expect(memoryError(new Error("bad magic number"))).toBeUndefined();
  });
});
