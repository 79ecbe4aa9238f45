import { openGGUF } from "../../gguf/node";
import { generate, type Timing } from "../../generate/generator";
import { DEFAULT_SAMPLING, type SamplingOptions } from "../../generate/sampler";
import { loadEngine } from "../../node/engines";
import { Tokenizer } from "../../tokenizer/node";
import { UsageError, floatOption, intOption, parseCommand, required, tokenList } from "../args";
import { engineOption, threadsOption } from "./logits";

const spec = {
  name: "generate",
  summary: "Generate tokens after a prompt (greedy when --temperature is 0).",
  usage: "generate --model FILE.gguf (--prompt TEXT | --tokens 1,2,3) [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--engine ref|wasm] [--threads N] [--json]",
  details: `
  --model FILE        a stablelm GGUF
  --prompt TEXT       prompt text, encoded with the model's vocabulary (special-token text stays plain text)
  --tokens IDS        or the prompt as comma-separated token ids
  --max-tokens N      tokens to generate; default 32; stops early at the end-of-text token
  --temperature T     default 0 (greedy); the model card samples with 0.7
  --top-p P           nucleus sampling, default 1 (off)
  --top-k K           default 0 (off); Hugging Face's default is 50
  --seed S            seed for sampling, default 0: the same seed gives the same tokens
  --engine NAME       wasm or ref; default wasm
  --threads N         threads of the wasm engine; default one per core (same tokens for any N)
  --json              print {"tokens":[…],"text":"…","timings":{…}} instead of streaming the text`,
  options: {
    model: { type: "string" },
    prompt: { type: "string" },
    tokens: { type: "string" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    "top-k": { type: "string" },
    seed: { type: "string" },
    engine: { type: "string" },
    threads: { type: "string" },
    json: { type: "boolean" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const cmd = "generate";
  const path = required(cmd, opts.model, "model");
  if ((opts.prompt === undefined) === (opts.tokens === undefined)) throw new UsageError(`${cmd}: give exactly one of --prompt or --tokens`);
  const maxTokens = intOption(cmd, opts["max-tokens"], "max-tokens", 32, 1, 1 << 20);
  const sampling: SamplingOptions = {
    ...DEFAULT_SAMPLING,
    temperature: floatOption(cmd, opts.temperature, "temperature", 0, 0, 100),
    topP: floatOption(cmd, opts["top-p"], "top-p", 1, 0, 1),
    topK: intOption(cmd, opts["top-k"], "top-k", 0, 0),
  };
  if (sampling.topP === 0) throw new UsageError(`${cmd}: --top-p must be > 0`);
  const seed = intOption(cmd, opts.seed, "seed", 0, 0, 2 ** 32 - 1);
  const engineName = engineOption(cmd, opts.engine);
  const threads = threadsOption(cmd, opts.threads);

  const header = await openGGUF(path);
  await header.close();
  const tokenizer = Tokenizer.fromGGUF(header.metadata);
  const prompt = opts.tokens !== undefined ? tokenList(cmd, opts.tokens) : tokenizer.encode(opts.prompt!);
  if (prompt.length === 0) throw new UsageError(`${cmd}: the prompt is empty`);

  const t0 = performance.now();
  const engine = await loadEngine(path, engineName, { threads });
  try {
    const { vocabSize, contextLength } = engine.config;
    const bad = prompt.find((t) => t >= vocabSize);
    if (bad !== undefined) throw new UsageError(`${cmd}: token id ${bad} is outside the model's vocabulary (0..${vocabSize - 1})`);
    if (prompt.length + maxTokens > contextLength) throw new UsageError(`${cmd}: prompt (${prompt.length}) + --max-tokens (${maxTokens}) exceeds the context length ${contextLength}`);
    const t1 = performance.now();

    // The same generation loop the servers run (sampling in HF's order, stop at end-of-text).
    const tokens: number[] = [];
    let text = "";
    let timing: Timing | undefined;
    for await (const ev of generate(engine, tokenizer, { prompt, maxTokens, sampling, seed, clock: () => performance.now() })) {
      if (ev.type === "token") {
        tokens.push(ev.id);
        text += ev.text;
        if (!opts.json) process.stdout.write(ev.text);
      } else if (ev.type === "done") timing = ev.timing;
    }
    const prefillMs = timing?.prefill_ms ?? 0;
    const timings = {
      load_ms: round(t1 - t0),
      prefill_ms: prefillMs,
      decode_ms: timing?.decode_ms ?? 0,
      prompt_tokens: prompt.length,
      generated_tokens: tokens.length,
      prefill_tokens_per_s: prefillMs > 0 ? round((prompt.length * 1000) / prefillMs) : null,
      decode_tokens_per_s: timing?.decode_tokens_per_s ?? null,
      engine: engine.name,
    };
    if (opts.json) process.stdout.write(`${JSON.stringify({ tokens, text, timings })}\n`);
    else {
      process.stdout.write("\n");
      process.stderr.write(`[${engine.name}] prompt ${prompt.length} tokens in ${prefillMs} ms, ${tokens.length} tokens at ${timings.decode_tokens_per_s ?? "-"} tok/s\n`);
    }
    return 0;
  } finally {
    await engine.close?.();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
