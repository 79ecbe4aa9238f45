/**
 * The Worker as it ships: src/worker.ts bundled with esbuild (as wrangler bundles it), each imported
 * `*.wasm` as a compiled module and each `*.html` as a Text module (wrangler's default rules), and
 * the compatibility date and flags of wrangler.toml. Shared by the Miniflare harness, the
 * bare-workerd harness and the Worker bench; no test framework here.
 */
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { MiniflareOptions } from "miniflare";

const root = new URL("../../", import.meta.url);

export type WorkerModule = NonNullable<MiniflareOptions["modules"]> extends (infer M)[] ? M : never;

const bundles = new Map<string, Promise<WorkerModule[]>>();

/**
 * `entry` (relative to the repo) bundled once per process as wrangler bundles it, named `name`,
 * plus each imported `*.wasm` as a compiled module; `external` stays for workerd (cloudflare:*).
 */
export function bundleEntry(entry: string, name: string, external: string[] = []): Promise<WorkerModule[]> {
  const cached = bundles.get(entry);
  if (cached) return cached;
  const wasm = new Map<string, string>();
  const text = new Map<string, string>();
  // The Worker imports the built playground page: build it from the current sources, not a stale copy.
  if (entry === "src/worker.ts") execFileSync(process.execPath, [new URL("scripts/build-playground.mjs", root).pathname], { stdio: "ignore" });
  const bundle = build({
    entryPoints: [new URL(entry, root).pathname],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external,
    write: false,
    logLevel: "silent",
    plugins: [
      {
        name: "compiled-wasm",
        setup(b) {
          b.onResolve({ filter: /\.wasm$/ }, (args) => {
            const file = new URL(args.path, `file://${args.resolveDir}/`).pathname;
            const wasmName = file.slice(file.lastIndexOf("/") + 1);
            wasm.set(wasmName, file);
            return { path: `./${wasmName}`, external: true };
          });
          b.onResolve({ filter: /\.html$/ }, (args) => {
            const file = new URL(args.path, `file://${args.resolveDir}/`).pathname;
            const textName = file.slice(file.lastIndexOf("/") + 1);
            text.set(textName, file);
            return { path: `./${textName}`, external: true };
          });
        },
      },
    ],
  }).then((out) => [
    { type: "ESModule" as const, path: name, contents: out.outputFiles[0].text },
    ...[...wasm].map(([wasmName, file]) => ({ type: "CompiledWasm" as const, path: wasmName, contents: readFileSync(file) })),
    ...[...text].map(([textName, file]) => ({ type: "Text" as const, path: textName, contents: readFileSync(file, "utf8") })),
  ]);
  bundles.set(entry, bundle);
  return bundle;
}

/** The edge Worker's modules. */
export function bundleWorker(): Promise<WorkerModule[]> {
  return bundleEntry("src/worker.ts", "worker.js");
}

/** compatibility_date and compatibility_flags, read from wrangler.toml so tests run what deploys. */
export function wranglerCompat(): { compatibilityDate: string; compatibilityFlags: string[] } {
  const toml = readFileSync(new URL("wrangler.toml", root), "utf8");
  const date = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)?.[1];
  const flags = toml.match(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m)?.[1];
  if (!date || flags === undefined) throw new Error("wrangler.toml: compatibility_date / compatibility_flags not found");
  return { compatibilityDate: date, compatibilityFlags: [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]) };
}
