#!/usr/bin/env node
// `npm start`: serve a model on http://127.0.0.1:8787 with `edgelm serve`.
// Which model: $EDGELM_MODEL, else a real Stable LM 2 GGUF in the models folder, else a synthetic
// tiny model made once (random weights: the API works end to end, the text is gibberish).
// Env: EDGELM_MODEL (a .gguf), EDGELM_MODELS_DIR (default <repo>/models), PORT (default 8787),
// HOST (default 127.0.0.1).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "bin", "edgelm.mjs");
const modelsDir = resolve(process.env.EDGELM_MODELS_DIR || join(root, "models"));
const REAL = ["stablelm-2-1_6b-q4_0.gguf", "stablelm-2-zephyr-1_6b-q4_0.gguf"];

function pickModel() {
  if (process.env.EDGELM_MODEL) {
    const path = resolve(process.env.EDGELM_MODEL);
    if (!existsSync(path)) {
      console.error(`npm start: EDGELM_MODEL=${path} does not exist`);
      process.exit(1);
    }
    return { path, synthetic: false };
  }
  for (const name of REAL) {
    const path = join(modelsDir, name);
    if (existsSync(path)) return { path, synthetic: false, zephyr: name.includes("zephyr") };
  }
  const path = join(modelsDir, "default-tiny.gguf");
  if (!existsSync(path)) {
    mkdirSync(modelsDir, { recursive: true });
    console.error(`npm start: no model found; making a synthetic tiny model at ${path} (once)`);
    const r = spawnSync(process.execPath, [cli, "synth", "--preset", "tiny", "--type", "f32", "--out", path], { stdio: "inherit" });
    if (r.status !== 0) {
      console.error("npm start: could not make the synthetic model (see above)");
      process.exit(1);
    }
  }
  return { path, synthetic: true };
}

const model = pickModel();
if (model.synthetic) {
  const bar = "!".repeat(78);
  console.error(
    [
      bar,
      "!! Serving a SYNTHETIC model with RANDOM WEIGHTS: the API is real, the text is gibberish.",
      "!! For the real Stable LM 2 1.6B (about 1 GB, needs network access to Hugging Face):",
      `!!   node bin/edgelm.mjs download --model stabilityai/stablelm-2-1_6b --dir ${modelsDir}`,
      "!! then run npm start again (see docs/weights-tools.md), or set EDGELM_MODEL=FILE.gguf.",
      bar,
    ].join("\n"),
  );
}

const args = [cli, "serve", "--model", model.path, "--port", process.env.PORT || "8787", "--host", process.env.HOST || "127.0.0.1"];
// The synthetic model has the real vocabulary, so the zephyr template works on it and clients can
// exercise /v1/chat/completions too (gibberish answers, real wire format).
if (model.synthetic) args.push("--model-id", "edgelm-synth-tiny", "--chat-template", "zephyr");
if (model.zephyr) args.push("--chat-template", "zephyr");
const child = spawn(process.execPath, args, { stdio: "inherit" });
// Forward Ctrl-C / termination so the server shuts down cleanly, and exit with its status.
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
