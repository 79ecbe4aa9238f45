/** `npm start` on a fresh checkout: no model anywhere → a synthetic one is made once and served. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

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
  it("synthesizes a tiny model into EDGELM_MODELS_DIR, warns loudly, and serves /health on PORT", async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, EDGELM_MODELS_DIR: dir, PORT: String(port) };
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
      { timeout: 90_000, interval: 250 },
    );
    expect(health).toMatchObject({ status: "ok", model: "edgelm-synth-tiny", synthetic: true, chat_template: "zephyr" });
    expect(existsSync(join(dir, "default-tiny.gguf"))).toBe(true);
    expect(output).toMatch(/SYNTHETIC model with RANDOM WEIGHTS/);
    expect(output).toMatch(/edgelm\.mjs download --model stabilityai\/stablelm-2-1_6b/);

    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 120_000);
});
