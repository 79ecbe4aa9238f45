/**
 * The Worker in the workerd binary itself, with no Miniflare in front. Miniflare (and so wrangler
 * dev) routes every request through its own entry Worker, and across that hop a client disconnect
 * is often lost: request.signal never aborts (workers-sdk #9334). Tests of what a disconnect does
 * run here, where workerd's HTTP server sees the socket close, as Cloudflare's front end would.
 * The model comes from a `disk` service bound as MODEL_FILES (the Worker's folder binding).
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { freePort } from "../helpers/ports";
import { bundleWorker, wranglerCompat } from "./bundle";
import { localWorkerdV8Flags } from "./v8-flags";

/** The binary Miniflare runs (workerd is Miniflare's dependency, pinned by the lockfile). */
function workerdBinary(): string {
  const fromMiniflare = createRequire(createRequire(import.meta.url).resolve("miniflare"));
  return (fromMiniflare("workerd") as { default: string }).default;
}

const capnpString = (s: string) => JSON.stringify(s);

export interface BareWorkerdOptions {
  vars: Record<string, string>;
  /** A GGUF on disk, served to the Worker as MODEL_FILES/<vars.MODEL_KEY>. */
  model: string;
  /** workerd's V8 flags (default: the repository's, localWorkerdV8Flags). */
  v8Flags?: string[];
}

export interface BareWorkerd {
  url: string;
  /** Everything workerd and the Worker wrote (console.log included). */
  logs(): string;
  close(): Promise<void>;
}

export async function startBareWorkerd(opts: BareWorkerdOptions): Promise<BareWorkerd> {
  const dir = mkdtempSync(join(tmpdir(), "edgelm-workerd-"));
  const modules = await bundleWorker();
  const moduleLines = modules.map((m) => {
    writeFileSync(join(dir, m.path), m.contents as string | Uint8Array);
    const kind = m.type === "ESModule" ? "esModule" : m.type === "Text" ? "text" : "wasm";
    return `(name = ${capnpString(m.path)}, ${kind} = embed ${capnpString(m.path)})`;
  });
  const key = opts.vars.MODEL_KEY;
  if (!key) throw new Error("startBareWorkerd: vars.MODEL_KEY is required");
  const modelLink = join(dir, "models", key);
  mkdirSync(dirname(modelLink), { recursive: true });
  // A relative target would resolve against the link's own folder, not the caller's.
  symlinkSync(resolve(opts.model), modelLink);

  const { compatibilityDate, compatibilityFlags } = wranglerCompat();
  const bindings = [...Object.entries(opts.vars).map(([k, v]) => `(name = ${capnpString(k)}, text = ${capnpString(v)})`), `(name = "MODEL_FILES", service = "model-files")`];
  const port = await freePort();
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [${moduleLines.join(", ")}],
      compatibilityDate = ${capnpString(compatibilityDate)},
      compatibilityFlags = [${compatibilityFlags.map(capnpString).join(", ")}],
      bindings = [${bindings.join(", ")}])),
    (name = "model-files", disk = (path = ${capnpString(join(dir, "models"))}, writable = false)),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
  v8Flags = [${(opts.v8Flags ?? localWorkerdV8Flags()).map(capnpString).join(", ")}],
);
`,
  );

  let output = "";
  const child = spawn(workerdBinary(), ["serve", join(dir, "config.capnp"), "--verbose"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (output += String(d)));
  child.stderr.on("data", (d) => (output += String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${output}`);
    try {
      await fetch(`${url}/health`);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`workerd did not listen on ${url} within 30 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    logs: () => output,
    close: async () => {
      // workerd drains open connections on SIGTERM; a test that failed may have left one hanging.
      if (child.exitCode === null) child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 2_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
