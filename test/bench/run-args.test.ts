/**
 * `npm run bench -- --quants --rounds 5`: bench/run.ts hands every argument
 * after a sub-bench's flag to that bench. It used to parse them itself and
 * stop at "Unknown option '--rounds'", although the quant bench documents
 * that very command. No bench runs here: --help and a rejected value both
 * answer before any model is loaded.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function bench(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "bench/run.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe("bench/run.ts passes a sub-bench's options through", () => {
  it("--quants --help prints the quant bench's own usage, with --rounds and --types", () => {
    const { status, out } = bench("--quants", "--help");
    expect(status).toBe(0);
    expect(out).toContain("--rounds N");
    expect(out).toContain("--types");
  });

  it("--quants --rounds 0 reaches the quant bench, which refuses the value (not run.ts's unknown option)", () => {
    const { status, out } = bench("--quants", "--rounds", "0");
    expect(status).not.toBe(0);
    expect(out).toContain("--rounds must be a positive integer, got 0");
    expect(out).not.toContain("Unknown option");
  });

  it("--structured --tokens reaches the structured-output bench (its --help lists --tokens)", () => {
    const { status, out } = bench("--structured", "--tokens", "8", "--help");
    expect(status).toBe(0);
    expect(out).toContain("--tokens N");
  });

  it("its own flags are still checked: an unknown one without a sub-bench is refused", () => {
    const { status, out } = bench("--types", "q4_k_m");
    expect(status).not.toBe(0);
    expect(out).toContain("Unknown option '--types'");
  });

  it("its own --reps and --rounds refuse a value that is not a positive integer, before any engine runs", () => {
    for (const flag of ["--reps", "--rounds"]) {
      const { status, out } = bench(flag, "0");
      expect(status).not.toBe(0);
      expect(out).toContain(`${flag} must be a positive integer, got 0`);
    }
  });
});
