/**
 * `edgelm complete`: the terminal face of src/client. Streams a completion (`--prompt`) or a chat
 * with history (`--chat`, lines from stdin) to stdout as tokens arrive, and a summary (finish
 * reason, route, usage, speed) to stderr. Ctrl-C stops the generation in progress; in a chat that
 * returns to the prompt, and a second Ctrl-C exits. With --json-schema or --json-object the answer
 * is not streamed: it is parsed and checked locally, and only a valid object reaches stdout.
 */
import { createInterface, type Interface } from "node:readline";
import { APIError, APIUserAbortError, createClient, type ChatMessage, type ChatRequest, type ChunkLike, type ChunkStream, type CompletionRequest, type EdgelmClient, type SamplingParams } from "../../client/index";
import { UsageError, floatOption, intOption, parseCommand, required } from "../args";
import { checkAnswer, jsonObjectOutput, jsonSchemaOutput, type StructuredOutput } from "../structured-output";

const spec = {
  name: "complete",
  summary: "Stream a completion, or chat, from an edgelm (or any OpenAI-compatible) server.",
  usage:
    "complete --url URL [--api-key K] (--prompt TEXT | --chat [--system TEXT]) [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--stop STR]... [--model ID] [--max-retries N] [--timeout SECONDS] [--json-schema FILE | --json-object] [--json]",
  details: `
  --url URL             the server, e.g. http://127.0.0.1:8787 (a base URL ending in /v1 works too)
  --api-key K           sent as "Authorization: Bearer K"; default $EDGELM_API_KEY
  --prompt TEXT         complete TEXT (POST /v1/completions)
  --chat                chat (POST /v1/chat/completions): one user message per line read from stdin, with the
                        whole conversation sent each turn (the server applies the chat template).
                        /exit or end of input ends it, /reset forgets the history. Works with piped stdin.
  --system TEXT         with --chat: a system message at the start of the conversation
  --max-tokens N        tokens to generate (server default: 16 for completions, up to 256 for chat)
  --temperature T       0..2 (0 = greedy); server default 1
  --top-p P             nucleus sampling, (0, 1]
  --top-k K             keep the K most likely tokens (0 = off)
  --seed S              integer; the same seed and request give the same output
  --stop STR            stop sequence, not included in the output; repeat for several (at most 4)
  --model ID            the model to ask for; default the one the server serves
  --max-retries N       retries before the first token on 429/503/5xx and network errors; default 2
  --timeout SECONDS     give up when nothing arrives for this long (before the first token: retried); default 600
  --json-schema FILE    structured output: ask for JSON matching the JSON Schema in FILE (response_format
                        json_schema, strict, named after the file), with --prompt or --chat. The answer is
                        not streamed: it is parsed and validated locally (ajv; "format" is not checked), and
                        only then printed to stdout as indented JSON. Output that is not JSON or does not
                        match, or was cut off by max tokens, is an error (exit 1) with the raw text on
                        stderr. Completions stop at 16 tokens unless --max-tokens says otherwise.
  --json-object         like --json-schema, but any JSON object (response_format json_object)
  --json                instead of streaming text, print one JSON object per answer to stdout:
                        {text, finish_reason, usage, route, request_id, model, attempts, outcome, timings};
                        with --json-schema/--json-object also "value" (the parsed answer, or null)

Generated text goes to stdout as it arrives; the summary goes to stderr:
  [finish: length · route: edge · tokens: 5 prompt + 16 completion · first token 120 ms · 16 in 0.9 s = 17.8 tokens/s]
Ctrl-C stops the generation (the request is cancelled, so the server stops too); at the chat prompt or
with --prompt, a second Ctrl-C exits. Exit status: 0 done, 1 an error (or an invalid structured answer),
2 bad usage, 130 stopped by Ctrl-C.

The client library behind this command is edgelm/client; see docs/client.md.`,
  options: {
    url: { type: "string" },
    "api-key": { type: "string" },
    prompt: { type: "string" },
    chat: { type: "boolean" },
    system: { type: "string" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    "top-k": { type: "string" },
    seed: { type: "string" },
    stop: { type: "string", multiple: true },
    model: { type: "string" },
    "max-retries": { type: "string" },
    timeout: { type: "string" },
    json: { type: "boolean" },
    "json-schema": { type: "string" },
    "json-object": { type: "boolean" },
  },
} as const;

type Options = NonNullable<ReturnType<typeof parseCommand<typeof spec.options>>>;

const CMD = "complete";

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const url = required(CMD, opts.url, "url");
  if (!/^https?:\/\/[^/]/i.test(url)) throw new UsageError(`${CMD}: --url must be an http(s) URL, got "${url}"`);
  if ((opts.prompt === undefined) === !opts.chat) throw new UsageError(`${CMD}: give exactly one of --prompt TEXT or --chat (see --help)`);
  if (opts.system !== undefined && !opts.chat) throw new UsageError(`${CMD}: --system goes with --chat`);
  if (opts["json-schema"] !== undefined && opts["json-object"]) throw new UsageError(`${CMD}: give one of --json-schema FILE or --json-object`);
  const sampling = samplingOf(opts);
  const structured = opts["json-schema"] !== undefined ? await jsonSchemaOutput(opts["json-schema"]) : opts["json-object"] ? jsonObjectOutput() : undefined;
  const timeout = floatOption(CMD, opts.timeout, "timeout", 600, 0.001);

  const client = createClient({
    baseURL: url,
    apiKey: opts["api-key"] ?? process.env.EDGELM_API_KEY,
    maxRetries: intOption(CMD, opts["max-retries"], "max-retries", 2, 0, 100),
    timeoutMs: timeout * 1000,
    model: opts.model,
    onRetry: ({ attempt, delayMs, error }) => process.stderr.write(`edgelm complete: attempt ${attempt} failed (${(error as Error).message}); retrying in ${(delayMs / 1000).toFixed(1)} s\n`),
  });
  const interrupts = new Interrupts();
  try {
    const turnOpts: TurnOptions = { json: Boolean(opts.json), structured, maxTokens: sampling.max_tokens };
    const request = structured ? { ...sampling, response_format: structured.format } : sampling;
    return opts.chat ? await chatLoop(client, request, opts.system, turnOpts, interrupts) : await completeOnce(client, { ...request, prompt: opts.prompt! }, turnOpts, interrupts);
  } finally {
    interrupts.dispose();
  }
}

function samplingOf(opts: Options): SamplingParams {
  const s: SamplingParams = {};
  if (opts["max-tokens"] !== undefined) s.max_tokens = intOption(CMD, opts["max-tokens"], "max-tokens", 16, 1);
  if (opts.temperature !== undefined) s.temperature = floatOption(CMD, opts.temperature, "temperature", 1, 0, 2);
  if (opts["top-p"] !== undefined) s.top_p = floatOption(CMD, opts["top-p"], "top-p", 1, 0, 1);
  if (opts["top-k"] !== undefined) s.top_k = intOption(CMD, opts["top-k"], "top-k", 0, -1);
  if (opts.seed !== undefined) s.seed = intOption(CMD, opts.seed, "seed", 0, Number.MIN_SAFE_INTEGER);
  if (opts.stop !== undefined) {
    if (opts.stop.length > 4) throw new UsageError(`${CMD}: at most 4 --stop sequences, got ${opts.stop.length}`);
    s.stop = opts.stop;
  }
  return s;
}

/**
 * Ctrl-C policy. While a generation runs, the first Ctrl-C cancels it and a second one exits;
 * with nothing running (the chat prompt), Ctrl-C exits. Listens on the process (piped stdin, or
 * --prompt) and on readline, which takes over Ctrl-C when stdin is a terminal.
 */
class Interrupts {
  #current: AbortController | undefined;
  #rl: Interface | undefined;
  readonly #onSigint = () => this.#handle();

  constructor() {
    process.on("SIGINT", this.#onSigint);
  }

  attach(rl: Interface): void {
    this.#rl = rl;
    rl.on("SIGINT", this.#onSigint);
  }

  /** A controller for the next generation; Ctrl-C aborts it. */
  begin(): AbortController {
    this.#current = new AbortController();
    return this.#current;
  }

  end(): void {
    this.#current = undefined;
  }

  #handle(): void {
    const c = this.#current;
    if (c && !c.signal.aborted) {
      c.abort();
      return;
    }
    process.stderr.write("\n");
    this.#rl?.close();
    process.exit(130);
  }

  dispose(): void {
    process.off("SIGINT", this.#onSigint);
  }
}

interface Turn {
  text: string;
  /**
   * "done", "stopped" (Ctrl-C; text is partial), "failed" (error already reported) or "invalid"
   * (a structured answer that did not parse or validate; reported too).
   */
  outcome: "done" | "stopped" | "failed" | "invalid";
}

interface TurnOptions {
  /** --json: one record per answer instead of streamed text. */
  json: boolean;
  /** --json-schema / --json-object: the answer is checked, and printed only when valid. */
  structured: StructuredOutput | undefined;
  /** For the "cut off" message; undefined: the server's default. */
  maxTokens: number | undefined;
}

/** Streams one answer to stdout (or collects it for --json or a structured answer) and reports on stderr. */
async function streamTurn(stream: ChunkStream<ChunkLike>, opts: TurnOptions, ctl: AbortController, interrupts: Interrupts): Promise<Turn> {
  // Half an object is of no use on stdout, so a structured answer is printed only once it checks out.
  const live = !opts.json && !opts.structured;
  const t0 = performance.now();
  let tFirst: number | undefined;
  let printed = 0;
  let outcome: Turn["outcome"] = "done";
  let error: unknown;
  try {
    for await (const _ of stream) {
      if (stream.textSoFar.length > printed) {
        tFirst ??= performance.now();
        if (live) process.stdout.write(stream.textSoFar.slice(printed));
        printed = stream.textSoFar.length;
      }
    }
  } catch (err) {
    if (err instanceof APIUserAbortError && ctl.signal.aborted) outcome = "stopped";
    else {
      outcome = "failed";
      error = err;
    }
  } finally {
    interrupts.end();
  }
  const tEnd = performance.now();
  if (live && printed > 0) process.stdout.write("\n");
  let value: unknown = null;
  let problem: string | undefined;
  if (opts.structured && outcome === "done") {
    const checked = checkAnswer(stream.textSoFar, stream.finishReason, opts.structured, opts.maxTokens);
    if (checked.ok) value = checked.value;
    else {
      outcome = "invalid";
      problem = checked.message;
    }
  }
  if (outcome === "stopped") process.stderr.write(`edgelm complete: stopped by Ctrl-C after ${stream.chunks} chunk(s)\n`);
  if (outcome === "failed") process.stderr.write(`edgelm complete: ${describeError(error)}\n`);
  if (outcome === "invalid") process.stderr.write(`edgelm complete: ${problem}\nedgelm complete: the raw output was:\n${stream.textSoFar}\n`);
  const completionTokens = stream.usage?.completion_tokens;
  const seconds = (tEnd - t0) / 1000;
  const timings = {
    first_token_ms: tFirst === undefined ? null : Math.round(tFirst - t0),
    total_ms: Math.round(tEnd - t0),
    tokens_per_second: completionTokens !== undefined && seconds > 0 ? round1(completionTokens / seconds) : null,
  };
  if (opts.json) {
    const result = {
      text: stream.textSoFar,
      finish_reason: stream.finishReason,
      usage: stream.usage,
      route: stream.route,
      request_id: stream.requestId,
      model: stream.model,
      attempts: stream.attempts,
      outcome,
      ...(opts.structured ? { value } : {}),
      ...(outcome === "failed" ? { error: describeError(error) } : outcome === "invalid" ? { error: problem } : {}),
      timings,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    if (outcome === "done" && opts.structured) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    if (outcome !== "failed") process.stderr.write(`${summary(stream, timings)}\n`);
  }
  return { text: stream.textSoFar, outcome };
}

function summary(s: ChunkStream<ChunkLike>, t: { first_token_ms: number | null; total_ms: number; tokens_per_second: number | null }): string {
  const parts = [`finish: ${s.finishReason ?? "none"}`, `route: ${s.route ?? "not reported"}`];
  if (s.usage) parts.push(`tokens: ${s.usage.prompt_tokens} prompt + ${s.usage.completion_tokens} completion`);
  else parts.push("usage: not reported");
  if (t.first_token_ms !== null) parts.push(`first token ${t.first_token_ms} ms`);
  const secs = (t.total_ms / 1000).toFixed(2);
  if (s.usage && t.tokens_per_second !== null) parts.push(`${s.usage.completion_tokens} in ${secs} s = ${t.tokens_per_second} tokens/s`);
  else parts.push(`${secs} s`);
  return `[${parts.join(" · ")}]`;
}

function describeError(err: unknown): string {
  if (err instanceof APIError) {
    const detail = [err.type && `type ${err.type}`, err.param && `param ${err.param}`, err.code !== null && `code ${err.code}`].filter(Boolean).join(", ");
    return detail ? `${err.message} (${detail})` : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function completeOnce(client: EdgelmClient, req: CompletionRequest, opts: TurnOptions, interrupts: Interrupts): Promise<number> {
  const ctl = interrupts.begin();
  const turn = await streamTurn(client.complete(req, { signal: ctl.signal }), opts, ctl, interrupts);
  return turn.outcome === "done" ? 0 : turn.outcome === "stopped" ? 130 : 1;
}

async function chatLoop(client: EdgelmClient, params: Omit<ChatRequest, "messages">, system: string | undefined, opts: TurnOptions, interrupts: Interrupts): Promise<number> {
  const interactive = Boolean(process.stdin.isTTY);
  // The prompt goes to stderr so that stdout carries only the assistant's words.
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stderr : undefined, terminal: interactive });
  interrupts.attach(rl);
  rl.setPrompt("you> ");
  const prompt = () => interactive && rl.prompt();
  const history: ChatMessage[] = system !== undefined ? [{ role: "system", content: system }] : [];
  const kept = history.length;
  let failures = 0;
  if (interactive) process.stderr.write("chat: type a message; /reset forgets the conversation, /exit (or Ctrl-D) ends it\n");
  prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === "/exit" || text === "/quit") break;
      if (text === "/reset") {
        history.length = kept;
        process.stderr.write("chat: history cleared\n");
      } else if (text !== "") {
        history.push({ role: "user", content: line });
        const ctl = interrupts.begin();
        if (interactive) process.stderr.write("assistant> ");
        const turn = await streamTurn(client.chat({ ...params, messages: [...history] }, { signal: ctl.signal }), opts, ctl, interrupts);
        // A stopped answer stays in the history as far as it went: that is what the user saw. So
        // does an invalid structured one: it is what the model said, and the user may ask it to fix it.
        if (turn.outcome === "failed") {
          history.pop();
          failures++;
        } else {
          if (turn.outcome === "invalid") failures++;
          history.push({ role: "assistant", content: turn.text });
        }
      }
      prompt();
    }
  } finally {
    rl.close();
  }
  return failures > 0 ? 1 : 0;
}
