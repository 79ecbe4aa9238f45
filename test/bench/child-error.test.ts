/**
 * A bench child that throws: the report shows the thrown error's message, not the stack's last
 * lines (which named only the child's file and the Node version, so a kernel build that failed
 * its self-test read as "at async <anonymous> … | Node.js v20").
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { childError } from "../../bench/common";

function stderrOf(code: string): string {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 30_000 });
  expect(r.status).not.toBe(0);
  return r.stderr;
}

describe("childError", () => {
  it("picks the thrown error's line out of a real Node crash report", () => {
    const err = stderrOf(`async function f() { await null; throw new Error("wanted the relaxed build, got scalar: self-test FAILED"); }\nawait f();`);
    expect(err.trim().split("\n").length).toBeGreaterThan(3);
    expect(childError(err)).toBe("Error: wanted the relaxed build, got scalar: self-test FAILED");
  });

  it("keeps an error's own class name", () => {
    expect(childError(stderrOf(`throw new RangeError("--prompt must be a positive integer, got 0");`))).toBe("RangeError: --prompt must be a positive integer, got 0");
  });

  it("falls back to the last lines when nothing was thrown", () => {
    expect(childError("loading\nout of memory\nkilled")).toBe("loading | out of memory | killed");
  });
});
