/**
 * The request fields of structured output: `response_format`, `tools`, `tool_choice` and
 * `parallel_tool_calls`. Schemas are compiled here, so an unsupported keyword is a 400 naming its
 * path before any work is queued, on the edge and before a request is sent to the origin.
 */
import { compileSchema, SchemaError, type JsonSpec, type OutputSpec, type ToolChoice } from "../generate/index";
import type { ChatTool } from "../tokenizer/index";
import { invalid } from "./errors";
import { Fields, isObject, type JsonObject } from "./fields";

export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; name: string; schema: JsonObject; strict: boolean };

export interface ToolSpec extends ChatTool {
  parameters?: JsonObject;
}

export interface StructuredParams {
  responseFormat: ResponseFormat;
  tools: ToolSpec[];
  toolChoice: ToolChoice;
  parallelToolCalls: boolean;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Compiles a schema (cached), turning its errors into a 400 whose param is the keyword's path. */
function checkSchema(schema: JsonObject, param: string): void {
  try {
    compileSchema(schema);
  } catch (err) {
    if (err instanceof SchemaError) throw invalid(`${param}${err.path}`, `${param}${err.path}: ${err.message}`, err.code);
    throw err;
  }
}

export function parseResponseFormat(v: unknown): ResponseFormat {
  if (v === undefined) return { type: "text" };
  if (!isObject(v)) throw invalid("response_format", "response_format must be an object", "invalid_type");
  const f = new Fields(v, "response_format.");
  const type = f.string("type");
  if (type === "text" || type === "json_object") {
    f.finish();
    return { type };
  }
  if (type !== "json_schema") throw invalid("response_format.type", `response_format.type must be "text", "json_object" or "json_schema"${type === undefined ? "" : `, got "${type}"`}`);
  const js = f.raw("json_schema");
  f.finish();
  if (!isObject(js)) throw invalid("response_format.json_schema", "response_format.json_schema must be an object with name and schema", js === undefined ? "missing_required_parameter" : "invalid_type");
  const g = new Fields(js, "response_format.json_schema.");
  const name = g.string("name");
  if (name === undefined || !NAME.test(name)) throw invalid("response_format.json_schema.name", "response_format.json_schema.name must be 1-64 letters, digits, _ or -");
  g.string("description");
  const strict = g.boolean("strict") ?? false;
  const schema = g.raw("schema");
  g.finish();
  if (!isObject(schema)) throw invalid("response_format.json_schema.schema", "response_format.json_schema.schema must be a JSON Schema object", schema === undefined ? "missing_required_parameter" : "invalid_type");
  checkSchema(schema, "response_format.json_schema.schema");
  return { type: "json_schema", name, schema, strict };
}

function parseTools(v: unknown): ToolSpec[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid("tools", "tools must be an array", "invalid_type");
  const names = new Set<string>();
  return v.map((t, i) => {
    const p = `tools[${i}]`;
    if (!isObject(t)) throw invalid(p, `${p} must be an object`, "invalid_type");
    const f = new Fields(t, `${p}.`);
    const type = f.string("type");
    if (type !== "function") throw invalid(`${p}.type`, `${p}.type must be "function"`);
    const fn = f.raw("function");
    f.finish();
    if (!isObject(fn)) throw invalid(`${p}.function`, `${p}.function must be an object`, fn === undefined ? "missing_required_parameter" : "invalid_type");
    const g = new Fields(fn, `${p}.function.`);
    const name = g.string("name");
    if (name === undefined || !NAME.test(name)) throw invalid(`${p}.function.name`, `${p}.function.name must be 1-64 letters, digits, _ or -`);
    if (names.has(name)) throw invalid(`${p}.function.name`, `${p}.function.name "${name}" is given twice`);
    names.add(name);
    const description = g.string("description");
    g.boolean("strict");
    const parameters = g.raw("parameters");
    g.finish();
    if (parameters !== undefined && !isObject(parameters)) throw invalid(`${p}.function.parameters`, `${p}.function.parameters must be a JSON Schema object`, "invalid_type");
    if (parameters) checkSchema(parameters, `${p}.function.parameters`);
    return { name, ...(description !== undefined ? { description } : {}), ...(parameters ? { parameters } : {}) };
  });
}

function parseToolChoice(v: unknown, tools: ToolSpec[]): ToolChoice {
  if (v === undefined) return tools.length ? "auto" : "none";
  if (v === "none" || v === "auto" || v === "required") {
    if (v !== "none" && !tools.length) throw invalid("tool_choice", `tool_choice "${v}" needs a non-empty tools list`);
    return v;
  }
  if (!isObject(v)) throw invalid("tool_choice", 'tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}', "invalid_type");
  const f = new Fields(v, "tool_choice.");
  if (f.string("type") !== "function") throw invalid("tool_choice.type", 'tool_choice.type must be "function"');
  const fn = f.raw("function");
  f.finish();
  const name = isObject(fn) ? fn.name : undefined;
  if (typeof name !== "string") throw invalid("tool_choice.function.name", "tool_choice.function.name is required", "missing_required_parameter");
  if (!tools.some((t) => t.name === name)) throw invalid("tool_choice.function.name", `tool_choice names "${name}", which is not in tools`);
  return { name };
}

/** Reads the structured-output fields of a chat request (completions take response_format alone). */
export function parseStructured(f: Fields): StructuredParams {
  const responseFormat = parseResponseFormat(f.raw("response_format"));
  f.unsupported("functions", (x) => Array.isArray(x) && x.length === 0, "the deprecated functions field is not implemented: send tools");
  f.unsupported("function_call", (x) => x === "none", "the deprecated function_call field is not implemented: send tool_choice");
  const tools = parseTools(f.raw("tools"));
  const toolChoice = parseToolChoice(f.raw("tool_choice"), tools);
  const parallelToolCalls = f.boolean("parallel_tool_calls") ?? true;
  return { responseFormat, tools, toolChoice, parallelToolCalls };
}

/** The JSON a response_format asks for; undefined for text. */
export function jsonSpec(rf: ResponseFormat): JsonSpec | undefined {
  if (rf.type === "text") return undefined;
  return rf.type === "json_object" ? { kind: "json_object" } : { kind: "json_schema", schema: rf.schema };
}

/** What the generation must produce, for the constraint engine; undefined when output is free text. */
export function outputSpec(s: StructuredParams): OutputSpec | undefined {
  const json = jsonSpec(s.responseFormat);
  if (s.toolChoice === "none" || !s.tools.length) return json && { text: json };
  const tools = typeof s.toolChoice === "object" ? s.tools.filter((t) => t.name === (s.toolChoice as { name: string }).name) : s.tools;
  // A named choice asks for that one call, as OpenAI answers it.
  return { text: json, tools: { tools: tools.map((t) => ({ name: t.name, parameters: t.parameters })), required: s.toolChoice !== "auto", parallel: s.parallelToolCalls && typeof s.toolChoice !== "object" } };
}
