/**
 * Chat prompts as token ids. Specials are inserted as ids; everything else (role names, message
 * content, `<|user|>` tags) is encoded as text with specials NOT parsed, so content can never inject
 * `<|endoftext|>` or `<|im_start|>`. Text between two specials is encoded as one piece, exactly as
 * HF tokenizes a rendered template (the split regex can join characters across a message boundary).
 */
import type { Metadata } from "../gguf/types";
import type { Tokenizer } from "./tokenizer";

/** `zephyr`: stablelm-2-zephyr-1_6b (docs/model.md, Chat templates). `chatml`: stablelm-2-1_6b-chat. */
export type ChatTemplateName = "zephyr" | "chatml";

export interface ChatMessage {
  role: string;
  /** "" for an assistant turn that only called tools. */
  content: string;
  /** An assistant turn's calls; `arguments` is the JSON text the model wrote. */
  toolCalls?: readonly { name: string; arguments: string }[];
}

/** A function the model may call: OpenAI's `tools[].function`. */
export interface ChatTool {
  name: string;
  description?: string;
  /** A JSON Schema object; absent means no arguments. */
  parameters?: unknown;
}

export interface ChatOptions {
  template: ChatTemplateName;
  /** Append the assistant header so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
  /** Rendered into the system turn with the call format (docs/structured-output.md, "Prompt format"). */
  tools?: readonly ChatTool[];
}

const ROLES = ["system", "user", "assistant", "tool"];

/**
 * JSON as Python's json.dumps writes it (", " and ": " separators, non-ASCII kept): the origin's
 * chat template renders tools with Jinja's tojson, and the two prompts must be the same text.
 */
export function pythonJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(pythonJson).join(", ")}]`;
  return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${JSON.stringify(k)}: ${pythonJson(x)}`).join(", ")}}`;
}

export const TOOL_CALL_OPEN = "<tool_call>\n";
export const TOOL_CALL_CLOSE = "\n</tool_call>";

/** The text of one call as the model writes it (and as history renders it). */
export function renderToolCall(name: string, args: unknown): string {
  return `${TOOL_CALL_OPEN}${pythonJson({ name, arguments: args })}${TOOL_CALL_CLOSE}`;
}

function toolsBlock(tools: readonly ChatTool[]): string {
  const lines = tools.map((t) => pythonJson({ type: "function", function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters ?? { type: "object", properties: {} } } }));
  return (
    "You can call these functions, described as JSON one per line:\n<tools>\n" +
    lines.join("\n") +
    '\n</tools>\nTo call a function, answer with only this, once per call:\n<tool_call>\n{"name": "the function name", "arguments": {the arguments as a JSON object}}\n</tool_call>'
  );
}

/** Messages as the templates see them: tools folded into the system turn, calls and results as text. */
function withTools(messages: readonly ChatMessage[], tools: readonly ChatTool[] | undefined): { role: string; content: string }[] {
  const out = messages.map((m, i) => {
    if (m.role === "tool") return { role: "user", content: `<tool_response>\n${m.content}\n</tool_response>` };
    if (!m.toolCalls?.length) return { role: m.role, content: m.content };
    const calls = m.toolCalls.map((c) => {
      let args: unknown;
      try {
        args = JSON.parse(c.arguments);
      } catch {
        throw new Error(`chat message ${i}: the arguments of tool call "${c.name}" are not JSON`);
      }
      return renderToolCall(c.name, args);
    });
    return { role: m.role, content: (m.content ? m.content + "\n" : "") + calls.join("\n") };
  });
  if (!tools?.length) return out;
  const block = toolsBlock(tools);
  if (out[0]?.role === "system") out[0] = { role: "system", content: `${out[0].content}\n\n${block}` };
  else out.unshift({ role: "system", content: block });
  return out;
}

/**
 * Recognises a `tokenizer.chat_template` Jinja string by its markers, not byte-for-byte: the
 * re-uploads of these repos may differ in whitespace. Unknown templates throw rather than guess.
 */
export function chatTemplateFromJinja(jinja: string): ChatTemplateName {
  if (jinja.includes("<|im_start|>") && jinja.includes("<|im_end|>")) return "chatml";
  if (jinja.includes("<|user|>") && jinja.includes("<|assistant|>") && (jinja.includes("eos_token") || jinja.includes("<|endoftext|>"))) return "zephyr";
  const head = jinja.replace(/\s+/g, " ").slice(0, 60);
  throw new Error(`unrecognised chat template "${head}…": only the zephyr and ChatML templates are supported; pass the template name explicitly`);
}

/** Text and special ids in order; adjacent text parts are later encoded together. */
type Part = string | number;

function render(tok: Tokenizer, given: readonly ChatMessage[], opts: ChatOptions): Part[] {
  const parts: Part[] = [];
  const special = (text: string): number => {
    const id = tok.specialId(text);
    if (id === undefined || !tok.isSpecial(id)) throw new Error(`the ${opts.template} template needs the special token ${text}, which this vocabulary lacks`);
    return id;
  };
  for (const [i, m] of given.entries()) {
    if (!m || typeof m.role !== "string" || typeof m.content !== "string") throw new Error(`chat message ${i} must have string role and content`);
    if (!ROLES.includes(m.role)) throw new Error(`chat message ${i}: unknown role "${m.role}" (the ${opts.template} template knows ${ROLES.join(", ")})`);
  }
  const messages = withTools(given, opts.tools);
  const gen = opts.addGenerationPrompt ?? true;
  if (opts.template === "zephyr") {
    const eos = tok.eosId;
    if (eos === undefined) throw new Error("the zephyr template needs an eos token");
    for (const m of messages) parts.push(`<|${m.role}|>\n${m.content}`, eos, "\n");
    if (gen) parts.push("<|assistant|>\n");
  } else if (opts.template === "chatml") {
    const start = special("<|im_start|>");
    const end = special("<|im_end|>");
    for (const m of messages) parts.push(start, `${m.role}\n${m.content}`, end, "\n");
    if (gen) parts.push(start, "assistant\n");
  } else {
    throw new Error(`unknown chat template "${String(opts.template)}"`);
  }
  return parts;
}

export function encodeChat(tok: Tokenizer, messages: readonly ChatMessage[], opts: ChatOptions): number[] {
  const out: number[] = [];
  let text = "";
  for (const p of render(tok, messages, opts)) {
    if (typeof p === "string") {
      text += p;
      continue;
    }
    if (text) out.push(...tok.encode(text, { allowSpecial: false }));
    text = "";
    out.push(p);
  }
  if (text) out.push(...tok.encode(text, { allowSpecial: false }));
  return out;
}

/** The prompt as text, specials written out (logs, debugging); not for re-encoding. */
export function renderChatText(tok: Tokenizer, messages: readonly ChatMessage[], opts: ChatOptions): string {
  return render(tok, messages, opts)
    .map((p) => (typeof p === "string" ? p : tok.decode([p])))
    .join("");
}

/** Template named by a GGUF's `tokenizer.chat_template`; undefined when the file has none. */
export function chatTemplateFromGGUF(meta: Metadata): ChatTemplateName | undefined {
  const v = meta.get("tokenizer.chat_template");
  if (v === undefined) return undefined;
  if (typeof v.value !== "string") throw new Error("tokenizer.chat_template must be a string");
  return chatTemplateFromJinja(v.value);
}
