import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { placeholderVocabGGUFMetadata } from "../../src/tokenizer/node";
import { writeVocabOnlyGGUF } from "./llama-vocab";

const root = new URL("../../", import.meta.url).pathname;
/** Runs the real CLI; independent runs go concurrently since each pays tsx's start-up. */
function edgelm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/edgelm.mjs", ...args], { cwd: root, encoding: "utf8" }, (error, out, err) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, out, err });
    });
  });
}

describe("edgelm tokenize / detokenize", () => {
  it("tokenize prints comma-separated ids or JSON; detokenize prints text", async () => {
    const [plain, asText, allowed, detok, detokJson] = await Promise.all([
      edgelm("tokenize", "--text", "Hello, I am a 20 year old male"),
      edgelm("tokenize", "--text", "Hi<|endoftext|>", "--json"),
      edgelm("tokenize", "--text", "Hi<|endoftext|>", "--json", "--allow-special"),
      edgelm("detokenize", "--tokens", "9906,11,100257"),
      edgelm("detokenize", "--tokens", "9906, 11,100257", "--skip-special", "--json"),
    ]);
    expect(plain).toEqual({ code: 0, out: "9906,11,358,1097,264,220,17,15,1060,2362,8762\n", err: "" });
    expect(JSON.parse(asText.out).ids).not.toContain(100257);
    expect(JSON.parse(allowed.out)).toEqual({ ids: [13347, 100257] });
    expect(detok).toMatchObject({ code: 0, out: "Hello,<|endoftext|>\n" });
    expect(detokJson.out).toBe('{"text":"Hello,"}\n');
  });

  it("has --help and reports bad arguments in one line with a non-zero exit", async () => {
    for (const h of await Promise.all(["tokenize", "detokenize"].map((cmd) => edgelm(cmd, "--help")))) {
      expect(h.code).toBe(0);
      expect(h.out).toMatch(/Usage: edgelm/);
    }
    const bad = [["tokenize"], ["detokenize", "--tokens", "1,a"], ["detokenize", "--tokens", "100352"], ["tokenize", "--text", "x", "--model", "/nonexistent.gguf"]];
    const results = await Promise.all(bad.map((args) => edgelm(...args)));
    results.forEach((r, i) => {
      expect(r.code, bad[i].join(" ")).not.toBe(0);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n"), bad[i].join(" ")).toHaveLength(1);
    });
  });

  it("uses a GGUF file's vocabulary with --model", async () => {
    const path = await writeVocabOnlyGGUF("cli", placeholderVocabGGUFMetadata(300));
    try {
      const [enc, dec] = await Promise.all([edgelm("tokenize", "--text", "the", "--model", path), edgelm("detokenize", "--tokens", "116,257,264", "--model", path)]);
      expect(enc.out).toBe("116,257\n");
      expect(dec.out).toBe("the<|endoftext|>\n");
    } finally {
      rmSync(path, { force: true });
    }
  });
});
