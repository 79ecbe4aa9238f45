/**
 * `synth --type` with a llama.cpp mix, then `inspect`: the file's quant mix
 * (tensors per element type) is the mix's plan, in text and JSON.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "edgelm-inspect-mix-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function edgelm(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/edgelm.mjs", ...args], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("edgelm synth --type q4_k_m | inspect", () => {
  it("writes the small preset as Q4_K with Q6_K for output.weight and layer 1's attn_v/ffn_down; inspect counts them", () => {
    const out = join(dir, "small-q4_k_m.gguf");
    const w = edgelm("synth", "--preset", "small", "--type", "q4_k_m", "--out", out);
    expect(w.code, w.stderr).toBe(0);
    const r = edgelm("inspect", "--model", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split("\n")[1]).toBe("tensor types: 16 F32, 13 Q4_K, 3 Q6_K");
    expect(r.stdout).toContain("general.file_type = 15");
    expect(r.stdout).toMatch(/blk\.1\.ffn_down\.weight\s+Q6_K\s+\[768, 256\]/);
    const j = JSON.parse(edgelm("inspect", "--model", out, "--json").stdout);
    expect(j.types).toEqual({ F32: 16, Q4_K: 13, Q6_K: 3 });
  });

  it("refuses an unknown --type, listing the ones it writes", () => {
    const r = edgelm("synth", "--preset", "small", "--type", "q4_k_s", "--out", join(dir, "x.gguf"));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--type must be one of .*q4_k_m, q5_k_m, q6_k/);
  });
});
