/**
 * `npm start` on a fresh checkout: no model anywhere → a synthetic one is made once, put into
 * wrangler's local R2 (state in a temporary folder), and served by the Worker under `wrangler dev`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { freePort } from "../helpers/ports";


let child: ChildProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), "edgelm-start-"));

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("scripts/start.mjs", () => {
  it("synthesizes a tiny model, seeds local R2, warns loudly, and serves the Worker on PORT via wrangler dev", async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, EDGELM_MODELS_DIR: join(dir, "models"), EDGELM_WRANGLER_STATE: join(dir, "state"), PORT: String(port) };
    delete env.EDGELM_MODEL;
    child = spawn(process.execPath, ["scripts/start.mjs"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));

    const health = await vi.waitFor(
      async () => {
        if (child!.exitCode !== null) throw new Error(`start.mjs exited with ${child!.exitCode}:\n${output}`);
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        if (res.status !== 200) throw new Error(`health ${res.status}`);
        return res.json();
      },
      { timeout: 120_000, interval: 250 },
    );
    expect(health).toMatchObject({ status: "ok", model: "edgelm-synth-tiny", synthetic: true, chat_template: "zephyr", source: "r2", integrity: "verified" });
    expect(health.engine).toMatch(/^wasm /);
    expect(existsSync(join(dir, "models", "default-tiny-q8_0.gguf"))).toBe(true);
    expect(output).toMatch(/SYNTHETIC model with RANDOM WEIGHTS/);
    expect(output).toMatch(/edgelm\.mjs download --model stabilityai\/stablelm-2-1_6b/);
    // It is the Worker answering (route header), streaming a real completion.
    const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Hello", max_tokens: 3, stream: true }),
    });
    expect(res.headers.get("x-edgelm-route")).toBe("edge");
    expect(await res.text()).toMatch(/"finish_reason":"length"[\s\S]*data: \[DONE\]/);
    // Offline: wrangler was told not to fetch the Request.cf placeholder.
    expect(output).not.toMatch(/Unable to fetch the `Request.cf` object/);
    await vi.waitFor(() => expect(output).toContain(`npm start: playground at http://127.0.0.1:${port}/`), { timeout: 10_000 });
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toMatch(/<title>edgelm playground<\/title>/);

    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    // wrangler took workerd down with it: nothing listens on the port any more.
    await vi.waitFor(async () => expect(await fetch(`http://127.0.0.1:${port}/health`).then(() => "up", () => "down")).toBe("down"), { timeout: 10_000 });
  }, 150_000);
});
