import { UsageError, intOption, parseCommand, required } from "../args";
import { DEFAULT_MAX_BATCH_TOKENS } from "../../api/index";
import { DEFAULT_MAX_BATCH, startServer } from "../../node/server";
import type { ChatTemplateName } from "../../tokenizer/node";
import { engineOption, threadsOption } from "./logits";

const spec = {
  name: "serve",
  summary: "Serve the OpenAI-compatible API (/v1/completions, /v1/chat/completions, /v1/models, /health) over HTTP.",
  usage: "serve --model FILE.gguf [--port 8000] [--host 127.0.0.1] [--model-id NAME] [--engine ref|wasm] [--threads N] [--chat-template zephyr|chatml] [--cors-origin ORIGINS] [--queue-depth N] [--max-batch N] [--max-batch-tokens N] [--kv-budget-mb MB] [--serve-model-file] [--require-manifest]",
  details: `
  --model FILE          a stablelm GGUF
  --port N              default 8000 (0: any free port, printed on start)
  --host ADDR           address to bind, default 127.0.0.1 (this machine only); 0.0.0.0 exposes it to the network
  --model-id NAME       the id clients send as "model"; default the file name without .gguf
  --engine NAME         wasm or ref; default wasm
  --threads N           threads of the wasm engine (the big matrix products are split between them); default one
                        per core; the answers are the same for any N
  --chat-template NAME  zephyr or chatml, overriding the GGUF's tokenizer.chat_template; without either, synthetic
                        models get zephyr, and base models have none (/v1/chat/completions answers 400)
  --cors-origin LIST    comma-separated allowed browser origins; default * (any)
  --queue-depth N       requests that may wait for admission; more get 429; default 16
  --max-batch N         generations decoding together in batched steps (wasm engine: each weight is read once per
                        step for all of them); default ${DEFAULT_MAX_BATCH}; 1 runs one at a time
  --max-batch-tokens N  token rows per step, prompt parts included, so a long prompt is fed beside the others'
                        decoding rather than ahead of it; default ${DEFAULT_MAX_BATCH_TOKENS}
  --kv-budget-mb MB     the KV cache shared by the running generations (blocks of 16 positions; a request is admitted
                        when prompt + max_tokens fit beside the others'); default two full contexts
  --serve-model-file    serve the GGUF itself at GET /v1/models/{id}/file (ranges, ETag), for browsers that run the
                        model on their own device; off by default: serving the weights redistributes them under the
                        model's licence (Stability AI's, for Stable LM 2)
  --require-manifest    refuse a model without its manifest (FILE.gguf.manifest.json, written by convert, synth and
                        download) instead of serving it as "unverified"; also EDGELM_REQUIRE_MANIFEST=true. With a
                        manifest the weights are always checked as they load, and a mismatch is never served

The playground page is at / (build/playground/, made by npm run build).

Replacing the model while serving: put the new file at the same path (write it elsewhere, then
rename it over the old one), then send SIGHUP (kill -HUP PID). The new model loads beside the old
one; new requests go to it, and the streams already running finish on the old weights, whose
engine is then closed. Without memory for both models, the server drains first (503 meanwhile).

See docs/api.md for the endpoints and fields.`,
  options: {
    model: { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    "model-id": { type: "string" },
    engine: { type: "string" },
    threads: { type: "string" },
    "chat-template": { type: "string" },
    "cors-origin": { type: "string" },
    "queue-depth": { type: "string" },
    "max-batch": { type: "string" },
    "max-batch-tokens": { type: "string" },
    "kv-budget-mb": { type: "string" },
    "serve-model-file": { type: "boolean" },
    "require-manifest": { type: "boolean" },
  },
} as const;

/** EDGELM_REQUIRE_MANIFEST: "true" or "false" (unset: false), so a deployment can insist without changing its command line. */
function requireManifestEnv(cmd: string): boolean {
  const v = process.env.EDGELM_REQUIRE_MANIFEST?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "false") return false;
  if (v === "true") return true;
  throw new UsageError(`${cmd}: EDGELM_REQUIRE_MANIFEST must be "true" or "false", got "${v}"`);
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const cmd = "serve";
  const modelPath = required(cmd, opts.model, "model");
  const port = intOption(cmd, opts.port, "port", 8000, 0, 65535);
  const engine = engineOption(cmd, opts.engine);
  const threads = threadsOption(cmd, opts.threads);
  const template = opts["chat-template"];
  if (template !== undefined && template !== "zephyr" && template !== "chatml") throw new UsageError(`${cmd}: --chat-template must be zephyr or chatml, got "${template}"`);
  const origins = opts["cors-origin"];
  const corsOrigins = origins === undefined || origins.trim() === "*" ? "*" : origins.split(",").map((s) => s.trim()).filter(Boolean);
  const modelId = opts["model-id"];
  if (modelId !== undefined && modelId.trim() === "") throw new UsageError(`${cmd}: --model-id must not be empty`);

  const maxBatch = intOption(cmd, opts["max-batch"], "max-batch", DEFAULT_MAX_BATCH, 1, 256);
  const server = await startServer({
    modelPath,
    port,
    host: opts.host ?? "127.0.0.1",
    modelId,
    engine,
    threads,
    chatTemplate: template as ChatTemplateName | undefined,
    corsOrigins,
    queueDepth: intOption(cmd, opts["queue-depth"], "queue-depth", 16, 0, 10_000),
    maxBatch,
    maxBatchTokens: intOption(cmd, opts["max-batch-tokens"], "max-batch-tokens", DEFAULT_MAX_BATCH_TOKENS, maxBatch, 4096),
    kvBudgetMB: opts["kv-budget-mb"] === undefined ? undefined : intOption(cmd, opts["kv-budget-mb"], "kv-budget-mb", 0, 1, 4096),
    serveModelFile: opts["serve-model-file"] === true,
    requireManifest: opts["require-manifest"] === true || requireManifestEnv(cmd),
  });
  process.stderr.write(`edgelm serve: listening on ${server.url}, loading ${modelPath} …\n`);
  const stop = () => {
    process.stderr.write("edgelm serve: shutting down\n");
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  // SIGHUP: replace the model file, then `kill -HUP`; streams running finish on the old weights.
  process.on("SIGHUP", () => {
    process.stderr.write(`edgelm serve: SIGHUP: reloading ${modelPath}\n`);
    server.reload().catch((err: Error) => process.stderr.write(`edgelm serve: reload failed, the current model serves on: ${err.message}\n`));
  });
  try {
    const model = await server.ready;
    const synthetic = model.info?.synthetic ? " — SYNTHETIC random-weights model, output is gibberish" : "";
    process.stderr.write(
      `edgelm serve: ready: model "${model.id}" (${model.engine.name} engine, chat ${model.chatTemplate ?? "off"})${synthetic}\n` +
        `  playground: ${server.url}/\n` +
        `  curl ${server.url}/v1/completions -H 'content-type: application/json' -d '{"prompt":"The capital of France is","max_tokens":16}'\n`,
    );
  } catch (err) {
    await server.close();
    throw err;
  }
  // Serve until a signal ends the process.
  return new Promise<number>(() => {});
}
