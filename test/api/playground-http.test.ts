/** `edgelm serve` serves the built playground page at `/`, the same file the Worker ships. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "../../src/node/server";
import { synthGGUF } from "../../weights-tools/fixtures";

let server: RunningServer;

beforeAll(async () => {
  execFileSync(process.execPath, ["scripts/build-playground.mjs"], { stdio: "ignore" });
  server = await startServer({ modelPath: await synthGGUF("tiny", "q4_0"), port: 0, engine: "ref", log: () => {} });
});
afterAll(() => server?.close());

describe("edgelm serve: the playground", () => {
  it("GET / is the built page, HTML, with its script inlined", async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await res.text();
    expect(html).toBe(readFileSync("build/playground/index.html", "utf8"));
    expect(html).not.toContain("/*SCRIPT*/");
    expect(html).toMatch(/createClient|chat\/completions/);
  });
});
