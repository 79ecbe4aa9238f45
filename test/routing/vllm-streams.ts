/**
 * Chat streams as vLLM 0.10.1.1's OpenAI server writes them (pydantic with exclude_unset): what
 * the fault front replays where the stand-in cannot produce the shape on cue. The extras our
 * normalizer must drop are here on purpose (stop_reason, system_fingerprint), and so are
 * vLLM's habits: a function piece without `arguments` when the parser had none yet, an empty
 * tool_calls list beside plain text, the rest of the arguments in the chunk that finishes.
 */

export const VLLM_MODEL = "stabilityai/stablelm-2-zephyr-1_6b";

type Delta = Record<string, unknown>;

function chunk(delta: Delta, finish: string | null = null): Record<string, unknown> {
  const choice: Record<string, unknown> = { index: 0, delta, logprobs: null, finish_reason: finish };
  if (finish !== null) choice.stop_reason = null;
  return { id: "chatcmpl-vllm0123", object: "chat.completion.chunk", created: 1700000000, model: VLLM_MODEL, system_fingerprint: "fp-vllm", choices: [choice] };
}

/** The opener, one chunk per delta, the finish (with `last` as its delta) and the usage chunk. */
export function vllmChat(deltas: readonly Delta[], finish: string, last: Delta = {}, usage = { prompt_tokens: 40, completion_tokens: 12 }): unknown[] {
  return [
    chunk({ role: "assistant", content: "" }),
    ...deltas.map((d) => chunk(d)),
    chunk(last, finish),
    { id: "chatcmpl-vllm0123", object: "chat.completion.chunk", created: 1700000000, model: VLLM_MODEL, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } },
  ];
}

/** The hermes parser's first piece of a call: id, type and name; `args` absent when it had none yet. */
export const callStart = (index: number, id: string, name: string, args?: string): Delta => ({
  tool_calls: [{ id, type: "function", index, function: args === undefined ? { name } : { name, arguments: args } }],
});

/** A later piece: more argument text only. */
export const callArgs = (index: number, args: string): Delta => ({ tool_calls: [{ index, function: { arguments: args } }] });

/** Two parallel calls, the second call's first piece without arguments, the last text in the finish chunk. */
export function parallelCalls(): unknown[] {
  return vllmChat(
    [
      callStart(0, "chatcmpl-tool-aaa111", "get_weather", ""),
      callArgs(0, '{"city": '),
      callArgs(0, '"Paris"}'),
      { tool_calls: [], content: "" },
      callStart(1, "chatcmpl-tool-bbb222", "get_time"),
      callArgs(1, '{"tz": "Europe/'),
    ],
    "tool_calls",
    callArgs(1, 'Paris"}'),
  );
}

/** Text before a call, as hermes streams it: content deltas, then the call. */
export function textThenCall(): unknown[] {
  return vllmChat([{ content: "Let me check" }, { content: "." }, callStart(0, "chatcmpl-tool-ccc333", "get_weather", '{"city": "Oslo"}')], "tool_calls");
}

/** A named tool_choice: vLLM streams the guided arguments as they come, the name on the first piece. */
export function namedCall(): unknown[] {
  return vllmChat([callStart(0, "chatcmpl-tool-ddd444", "get_time", '{"tz"'), callArgs(0, ': "UTC"'), callArgs(0, "}")], "tool_calls");
}

/** Plain content (what a response_format answer looks like upstream). */
export function content(...pieces: string[]): unknown[] {
  return vllmChat(
    pieces.map((p) => ({ content: p })),
    "stop",
  );
}
