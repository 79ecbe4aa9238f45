/**
 * The one place that turns a loaded GGUF into a ServedModel, so the Worker and `edgelm serve` agree
 * on the default engine, on the chat template a model gets and on what /health reports. Loading
 * stays with the hosts (a file in Node, a stream or shards in workerd): they hand over the
 * metadata and the engine, and pick the engine through `chooseEngine`.
 */
import { metaString, type Metadata } from "../gguf/index";
import type { Engine } from "../model/index";
import { chatTemplateFromGGUF, Tokenizer, type ChatTemplateName } from "../tokenizer/index";
import type { ServedModel } from "./deps";

/** Every engine some host can serve with; each host loads the subset it supports. */
export const ENGINE_NAMES = ["ref", "wasm", "sharded"] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
/** The fast one; `ref` is the float64 oracle, far too slow to be anyone's default. */
export const DEFAULT_ENGINE = "wasm" satisfies EngineName;

/**
 * The engine `requested` names, or the default when it names none, among the engines this host can
 * load. `setting` is how the host's user writes the choice (`--engine`, `var ENGINE`), so that the
 * error points at what to change.
 */
export function chooseEngine<N extends EngineName>(requested: string | undefined, available: readonly N[], setting = "engine"): N {
  const name = requested ?? DEFAULT_ENGINE;
  if (!(available as readonly string[]).includes(name)) throw new Error(`${setting} must be one of ${available.join(", ")}, got ${JSON.stringify(name)}`);
  return name as N;
}

/** The file's name without folders and `.gguf`: the id a model gets when the host names none. */
export function modelIdFromFile(file: string): string {
  return file.replace(/^.*\//, "").replace(/\.gguf$/i, "");
}

export interface ChatChoice {
  /** The host's explicit template; wins over the file's. */
  override?: ChatTemplateName;
  /** How this host's user turns chat on ("pass --chat-template", "set CHAT_TEMPLATE"), for the warning. */
  hint: string;
  log?: (line: string) => void;
}

/** What the GGUF's metadata alone decides; Node reads it before the weights, so a bad vocabulary fails fast. */
export interface ModelFacts {
  tokenizer: Tokenizer;
  chatTemplate?: ChatTemplateName;
  generalName?: string;
  synthetic: boolean;
}

export function readModelFacts(metadata: Metadata, chat: ChatChoice): ModelFacts {
  const generalName = metaString(metadata, "general.name");
  const synthetic = isSynthetic(generalName);
  const tokenizer = Tokenizer.fromGGUF(metadata);
  return { tokenizer, chatTemplate: chooseChatTemplate(metadata, synthetic, chat), generalName, synthetic };
}

/** weights-tools names its random-weight models so; their output is noise and /health must say so. */
function isSynthetic(generalName: string | undefined): boolean {
  return generalName?.startsWith("edgelm-synth") ?? false;
}

/**
 * The override, else the file's template, else zephyr for a synthetic model (they carry the real
 * vocabulary but no template, and zephyr lets clients exercise chat), else none: chat answers 400,
 * and the log says how to turn it on in this host.
 */
function chooseChatTemplate(metadata: Metadata, synthetic: boolean, chat: ChatChoice): ChatTemplateName | undefined {
  if (chat.override) return chat.override;
  let reason = "the GGUF has no tokenizer.chat_template (a base model)";
  try {
    const fromFile = chatTemplateFromGGUF(metadata);
    if (fromFile) return fromFile;
  } catch (err) {
    reason = (err as Error).message;
    if (synthetic) chat.log?.(`warning: ${reason}; using zephyr, as for every synthetic model`);
  }
  if (synthetic) return "zephyr";
  chat.log?.(`warning: ${reason}; /v1/chat/completions is off (${chat.hint})`);
  return undefined;
}

/** What the host knows of its load, beyond the GGUF itself. */
export interface LoadedModel {
  engine: Engine;
  /** The GGUF's file name or object key, as /health reports it. */
  file: string;
  /** Default: `file` without folders and `.gguf`. */
  id?: string;
  /** Where the weights came from (r2, a folder binding …), when the host has more than one place. */
  source?: string;
  loadMs?: number;
  admit?: ServedModel["admit"];
  /** Whether the weights were checked against the model's manifest as they loaded (docs/operations.md, "Integrity"). */
  integrity?: "verified" | "unverified";
}

export function buildServedModel(facts: ModelFacts, loaded: LoadedModel): ServedModel {
  const model: ServedModel = {
    id: loaded.id ?? modelIdFromFile(loaded.file),
    engine: loaded.engine,
    tokenizer: facts.tokenizer,
    chatTemplate: facts.chatTemplate,
    created: Math.floor(Date.now() / 1000),
    info: servedInfo(facts, loaded),
  };
  if (loaded.admit) model.admit = loaded.admit;
  return model;
}

/** /health and /v1/models extras; a host that does not know a fact leaves its field out rather than reporting null. */
function servedInfo(facts: ModelFacts, loaded: LoadedModel): Record<string, unknown> {
  const info: Record<string, unknown> = { file: loaded.file };
  if (loaded.source !== undefined) info.source = loaded.source;
  info.general_name = facts.generalName ?? null;
  info.synthetic = facts.synthetic;
  if (loaded.loadMs !== undefined) info.load_ms = Math.round(loaded.loadMs);
  if (loaded.integrity !== undefined) info.integrity = loaded.integrity;
  return info;
}
