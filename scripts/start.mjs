#!/usr/bin/env node
// `npm start`: the Cloudflare Worker (src/worker.ts) under `wrangler dev`, offline, on
// http://127.0.0.1:8787, with the model in wrangler's local R2.
// Which model: $EDGELM_MODEL, else a real Stable LM 2 GGUF in the models folder, else a synthetic
// tiny model made once (random weights: the API works end to end, the text is gibberish).
// The model is put into local R2 once (re-put when the file changes); `edgelm serve` is the Node host.
// The playground page (src/playground/) is rebuilt first, and its URL printed once the Worker answers.
// Env: EDGELM_MODEL (a .gguf), EDGELM_MODELS_DIR (default <repo>/models), PORT (default 8787),
// HOST (default 127.0.0.1), EDGELM_WRANGLER_STATE (local R2 etc.; default <repo>/.wrangler/state).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "bin", "edgelm.mjs");
const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const modelsDir = resolve(process.env.EDGELM_MODELS_DIR || join(root, "models"));
const stateDir = resolve(process.env.EDGELM_WRANGLER_STATE || join(root, ".wrangler", "state"));
// Must match bucket_name of the MODELS binding in wrangler.toml.
const BUCKET = "edgelm-models";
const REAL = ["stablelm-2-1_6b-q4_0.gguf", "stablelm-2-zephyr-1_6b-q4_0.gguf"];
const SYNTH = "default-tiny-q8_0.gguf";
// Local mode needs no account and no network: no metrics, no update check (it rides on the banner),
// no download of the Request.cf placeholder from Cloudflare.
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false" };

function fail(message) {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

function pickModel() {
  if (process.env.EDGELM_MODEL) {
    const path = resolve(process.env.EDGELM_MODEL);
    if (!existsSync(path)) fail(`EDGELM_MODEL=${path} does not exist`);
    return { path, synthetic: false, zephyr: basename(path).includes("zephyr") };
  }
  for (const name of REAL) {
    const path = join(modelsDir, name);
    if (existsSync(path)) return { path, synthetic: false, zephyr: name.includes("zephyr") };
  }
  // q8_0 (~17 MB) rather than f32 (~51 MB): every byte is put into local R2 first, which is slow.
  const path = join(modelsDir, SYNTH);
  if (!existsSync(path)) {
    mkdirSync(modelsDir, { recursive: true });
    console.error(`npm start: no model found; making a synthetic tiny model at ${path} (once)`);
    const r = spawnSync(process.execPath, [cli, "synth", "--preset", "tiny", "--type", "q8_0", "--out", path], { stdio: "inherit" });
    if (r.status !== 0) fail("could not make the synthetic model (see above)");
  }
  return { path, synthetic: true };
}

/** Puts the model into local R2 unless the same file (path, size, mtime) is already there. */
function seedLocalR2(path, key) {
  const markerPath = join(stateDir, "edgelm-r2-seeded.json");
  const st = statSync(path);
  const stamp = { path, size: st.size, mtimeMs: st.mtimeMs };
  let seeded = {};
  try {
    seeded = JSON.parse(readFileSync(markerPath, "utf8"));
  } catch {}
  if (JSON.stringify(seeded[key]) === JSON.stringify(stamp)) return;
  console.error(`npm start: putting ${basename(path)} (${(st.size / 1e6).toFixed(0)} MB) into local R2 as ${BUCKET}/${key} (once per file)`);
  mkdirSync(stateDir, { recursive: true });
  const r = spawnSync(process.execPath, [wrangler, "r2", "object", "put", `${BUCKET}/${key}`, "--file", path, "--local", "--persist-to", stateDir], { stdio: "inherit", cwd: root, env });
  if (r.status !== 0) fail("could not put the model into local R2 (see above)");
  seeded[key] = stamp;
  writeFileSync(markerPath, JSON.stringify(seeded, null, 2));
}

/** Prints the playground's URL once the Worker serves it: wrangler's own "Ready" line comes before the Worker can answer. */
function announcePlayground(url) {
  const poll = setInterval(async () => {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.status !== 200) return;
      clearInterval(poll);
      console.error(`npm start: playground at ${url} (the API is under ${url}v1/)`);
    } catch {}
  }, 500);
  poll.unref();
}

const model = pickModel();
const key = basename(model.path);
if (model.synthetic) {
  const bar = "!".repeat(78);
  console.error(
    [
      bar,
      "!! Serving a SYNTHETIC model with RANDOM WEIGHTS: the API is real, the text is gibberish.",
      "!! For the real Stable LM 2 1.6B (about 1 GB, needs network access to Hugging Face):",
      `!!   node bin/edgelm.mjs download --model stabilityai/stablelm-2-1_6b --dir ${modelsDir}`,
      "!! then run npm start again (see docs/worker.md), or set EDGELM_MODEL=FILE.gguf.",
      bar,
    ].join("\n"),
  );
}
seedLocalR2(model.path, key);
// The manifest beside the model, when there is one (synth, convert and download write it): the Worker verifies the weights against it.
if (existsSync(`${model.path}.manifest.json`)) seedLocalR2(`${model.path}.manifest.json`, `${key}.manifest.json`);

const vars = { MODEL_KEY: key, MODEL_ID: key.replace(/\.gguf$/i, "") };
if (model.synthetic) {
  vars.MODEL_ID = "edgelm-synth-tiny";
  // The throughput figures in wrangler.toml are the real model's; the tiny one is far faster.
  vars.DECODE_TOKENS_PER_S = "0";
}
if (model.zephyr) vars.CHAT_TEMPLATE = "zephyr";
const args = [
  wrangler, "dev",
  "--ip", process.env.HOST || "127.0.0.1",
  "--port", process.env.PORT || "8787",
  "--persist-to", stateDir,
  "--show-interactive-dev-session=false",
  ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
];
// wrangler bundles build/playground/index.html: build it from the current sources.
const page = spawnSync(process.execPath, [join(root, "scripts", "build-playground.mjs")], { stdio: "inherit", cwd: root });
if (page.status !== 0) fail("could not build the playground page (see above)");
const child = spawn(process.execPath, args, { stdio: "inherit", cwd: root, env });
announcePlayground(`http://${process.env.HOST || "127.0.0.1"}:${process.env.PORT || "8787"}/`);
// Forward Ctrl-C / termination so wrangler stops workerd cleanly, and exit with its status.
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
