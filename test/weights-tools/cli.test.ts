import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers";

const root = tempDir("cli");
afterAll(() => rmSync(root, { recursive: true, force: true }));

function edgelm(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/edgelm.mjs", ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const oneLine = (s: string) => s.trim().split("\n").length === 1;

describe("weights CLI", () => {
  it.each(["synth", "convert", "download"])("%s --help lists its options", (cmd) => {
    const r = edgelm(cmd, "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`Usage: edgelm ${cmd}`));
    expect(r.stdout).toMatch(/--type/);
    expect(r.stdout).toMatch(/default/);
  });

  it("a bad flag is one line on stderr and exit code 2", () => {
    const r = edgelm("synth", "--preset", "tiny", "--bogus");
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/bogus/);
  });

  it("a bad value is a usage error too", () => {
    const r = edgelm("convert", "--hf", root, "--out", join(root, "x.gguf"), "--type", "q5_k");
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/--type must be one of f32, f16, bf16, q8_0, q4_0/);
  });

  it("a missing folder or config is one line on stderr and a non-zero exit", () => {
    const missing = edgelm("convert", "--hf", join(root, "nope"), "--out", join(root, "x.gguf"));
    expect(missing.code).toBe(1);
    expect(oneLine(missing.stderr)).toBe(true);
    expect(missing.stderr).toMatch(/no such folder/);
    const noConfig = edgelm("convert", "--hf", root, "--out", join(root, "x.gguf"));
    expect(noConfig.code).toBe(1);
    expect(oneLine(noConfig.stderr)).toBe(true);
    expect(noConfig.stderr).toMatch(/no config\.json/);
  });

  it("synth writes a GGUF and an HF folder, then convert turns the folder into the same GGUF", () => {
    const gguf = join(root, "tiny.gguf");
    const hf = join(root, "tiny-hf");
    const s = edgelm("synth", "--preset", "tiny", "--type", "q8_0", "--seed", "3", "--out", gguf, "--hf-out", hf, "--hf-dtype", "bf16");
    expect(s.stderr).toMatch(/^synth: wrote .*tiny-hf \(HF, bf16\) and .*tiny\.gguf \(q8_0/m);
    expect(s.code).toBe(0);
    expect(existsSync(join(hf, "generation_config.json"))).toBe(true);
    const out = join(root, "conv.gguf");
    const c = edgelm("convert", "--hf", hf, "--out", out, "--type", "q8_0");
    expect(c.code).toBe(0);
    expect(c.stderr).toMatch(/^convert: wrote .*conv\.gguf \(q8_0, 32 tensors/m);
    expect(readFileSync(out).equals(readFileSync(gguf))).toBe(true);
  });
});
