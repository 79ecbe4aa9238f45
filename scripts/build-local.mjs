#!/usr/bin/env node
/**
 * Bundles edgelm/local for browsers (docs/local.md): build/local/edgelm-local.js (the page side,
 * an ES module), build/local/edgelm-local-worker.js (the engine's Web Worker, an ES module) and the
 * plain kernel builds beside them, which the worker fetches and compiles (run scripts/build-wasm.mjs
 * first). The shared-memory builds are left out: the on-device engine runs on one thread.
 *
 *   node scripts/build-local.mjs [--outdir DIR]
 */
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { outdir: { type: "string" } } });
const outdir = resolve(values.outdir ?? join(root, "build", "local"));
mkdirSync(outdir, { recursive: true });

const common = { bundle: true, format: "esm", platform: "browser", target: ["es2022"], sourcemap: true, logLevel: "warning", legalComments: "none" };
await build({ ...common, entryPoints: [join(root, "src/local/index.ts")], outfile: join(outdir, "edgelm-local.js") });
await build({ ...common, entryPoints: [join(root, "src/local/worker.ts")], outfile: join(outdir, "edgelm-local-worker.js") });

for (const kind of ["relaxed-fused", "relaxed", "simd", "scalar"]) {
  const src = join(root, "build", `kernels-${kind}.wasm`);
  if (!existsSync(src)) throw new Error(`${src} is missing: run node scripts/build-wasm.mjs first`);
  copyFileSync(src, join(outdir, `kernels-${kind}.wasm`));
}
process.stdout.write(`edgelm/local → ${outdir}\n`);
