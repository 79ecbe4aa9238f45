/** The platform-neutral entry must bundle for workerd: no node: imports anywhere in its graph. */
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cl100kRankPath } from "../../src/tokenizer/node";

describe("src/tokenizer/index (Workers entry)", () => {
  it("bundles with no Node built-ins and encodes once given the rank text", async () => {
    const out = await build({
      entryPoints: [new URL("../../src/tokenizer/index.ts", import.meta.url).pathname],
      bundle: true,
      platform: "neutral",
      format: "esm",
      write: false,
      logLevel: "silent",
    });
    const code = out.outputFiles[0].text;
    expect(code).not.toMatch(/from\s*["']node:|require\(["']node:/);
    const mod = await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
    const text = readFileSync(cl100kRankPath(), "latin1");
    expect(() => mod.Tokenizer.arcade100k()).toThrow(/setCl100kRankSource/);
    mod.setCl100kRankSource(() => text);
    expect(mod.Tokenizer.arcade100k().encode("Hello, I am")).toEqual([9906, 11, 358, 1097]);
  });
});
