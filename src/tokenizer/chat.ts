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
  content: string;
}

export interface ChatOptions {
  template: ChatTemplateName;
  /** Append the assistant header so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
}

const ROLES = ["system", "user", "assistant"];

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

function render(tok: Tokenizer, messages: readonly ChatMessage[], opts: ChatOptions): Part[] {
  const parts: Part[] = [];
  const special = (text: string): number => {
    const id = tok.specialId(text);
    if (id === undefined || !tok.isSpecial(id)) throw new Error(`the ${opts.template} template needs the special token ${text}, which this vocabulary lacks`);
    return id;
  };
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m.role !== "string" || typeof m.content !== "string") throw new Error(`chat message ${i} must have string role and content`);
    if (!ROLES.includes(m.role)) throw new Error(`chat message ${i}: unknown role "${m.role}" (the ${opts.template} template knows ${ROLES.join(", ")})`);
  }
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
