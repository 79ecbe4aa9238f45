import { availableParallelism } from "node:os";
import { chooseEngine } from "../../api/index";
import { loadEngine, NODE_ENGINES, type NodeEngineName } from "../../node/engines";
import { UsageError, intOption, parseCommand, required, tokenList } from "../args";

const spec = {
  name: "logits",
  summary: "Print the next-token logits after a token sequence (the last position's vocab_size values).",
  usage: "logits --model FILE.gguf --tokens 1,2,3 [--engine ref|wasm] [--threads N] [--json]",
  details: `
  --model FILE     a stablelm GGUF (F32, F16, BF16, Q8_0, Q4_0, Q6_K tensors)
  --tokens IDS     comma-separated token ids, fed from position 0
  --engine NAME    wasm (int8/int4 WASM SIMD kernels, the fast engine) or ref (plain
                   TypeScript, float64, the numerical oracle); default wasm
  --threads N      threads of the wasm engine; default one per core (same logits for any N)
  --json           print {"logits":[…]}; otherwise one value per line`,
  options: { model: { type: "string" }, tokens: { type: "string" }, engine: { type: "string" }, threads: { type: "string" }, json: { type: "boolean" } },
} as const;

export function engineOption(cmd: string, value: string | undefined): NodeEngineName {
  try {
    return chooseEngine(value, NODE_ENGINES, "--engine");
  } catch (err) {
    throw new UsageError(`${cmd}: ${(err as Error).message}`);
  }
}

/** --threads: the wasm engine's threads, default one per core. */
export function threadsOption(cmd: string, value: string | undefined): number {
  return intOption(cmd, value, "threads", availableParallelism(), 1, 1024);
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const model = required("logits", opts.model, "model");
  const tokens = tokenList("logits", required("logits", opts.tokens, "tokens"));
  const engineName = engineOption("logits", opts.engine);
  const threads = threadsOption("logits", opts.threads);
  const engine = await loadEngine(model, engineName, { threads });
  let logits: Float32Array;
  try {
    const bad = tokens.find((t) => t >= engine.config.vocabSize);
    if (bad !== undefined) throw new UsageError(`logits: token id ${bad} is outside the model's vocabulary (0..${engine.config.vocabSize - 1})`);
    [logits] = await engine.forward(engine.newSequence(), tokens);
  } finally {
    await engine.close?.();
  }
  const values = Array.from(logits);
  process.stdout.write(opts.json ? `${JSON.stringify({ logits: values })}\n` : `${values.join("\n")}\n`);
  return 0;
}
