/**
 * What the browser tests and bench of edgelm/local serve: the bundles (scripts/build-local.mjs
 * into a fresh folder, plus edgelm/client bundled for the browser) and a page that exposes both to
 * `page.evaluate`. The page uses only the published surfaces: createLocalEngine, its fetch, and
 * createClient with that fetch.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** URL path → file, for the static server. */
export async function buildLocalBundles(): Promise<Record<string, string>> {
  const out = mkdtempSync(join(tmpdir(), "edgelm-local-"));
  const r = spawnSync(process.execPath, [join(root, "scripts/build-local.mjs"), "--outdir", out], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build-local failed: ${r.stderr || r.stdout}`);
  await build({ entryPoints: [join(root, "src/client/index.ts")], outfile: join(out, "edgelm-client.js"), bundle: true, format: "esm", platform: "browser", target: ["es2022"], logLevel: "warning" });
  return Object.fromEntries(readdirSync(out).map((f) => [`/${f}`, join(out, f)]));
}

export const LOCAL_TEST_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>edgelm/local test</title>
<pre id="log"></pre>
<script type="module">
import { createLocalEngine, LOCAL_BASE_URL } from "/edgelm-local.js";
import { createClient } from "/edgelm-client.js";
const log = (line) => (document.getElementById("log").textContent += line + "\\n");
window.loadModel = async (options = {}) => {
  const progress = [], warnings = [];
  const t0 = performance.now();
  const engine = createLocalEngine({ model: "/model.gguf", ...options, onProgress: (p) => progress.push(p), onWarning: (w) => { warnings.push(w); log("warning: " + w); } });
  window.engine = engine;
  try {
    const info = await engine.ready;
    log("ready: " + JSON.stringify(info));
    return { info, progress, warnings, ms: performance.now() - t0 };
  } catch (e) {
    log("error: " + e.code + ": " + e.message);
    return { error: { code: e.code, message: e.message }, progress, warnings };
  }
};
window.complete = async (request) => {
  const client = createClient({ baseURL: LOCAL_BASE_URL, fetch: window.engine.fetch, maxRetries: 0 });
  const stream = client.complete(request);
  const chunks = [];
  for await (const c of stream) chunks.push(c.choices[0]?.text ?? "");
  return { text: chunks.join(""), chunks: chunks.length, finishReason: stream.finishReason, usage: stream.usage };
};
window.tokens = (prompt, maxTokens) => window.engine.tokens(prompt, { maxTokens, temperature: 0 });
window.cachedEntry = async () => {
  const cache = await caches.open("edgelm-models-v1");
  const hit = await cache.match(new URL("/model.gguf", location.href).href);
  return hit ? { etag: hit.headers.get("x-edgelm-etag"), size: (await hit.arrayBuffer()).byteLength } : null;
};
</script>`;
