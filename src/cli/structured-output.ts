/**
 * `edgelm complete --json-schema FILE` / `--json-object`: what to ask the server for, and the local
 * check of what came back. The check runs even against a server that constrains decoding, because
 * the CLI talks to any OpenAI-compatible server (some accept response_format and ignore it) and
 * because a constrained answer cut off by max tokens is still broken JSON.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import type { FinishReason, JsonSchema, ResponseFormat } from "../client/index";

export interface StructuredOutput {
  format: ResponseFormat;
  /** Checks a parsed answer: null when it is acceptable, else why not. */
  check(value: unknown): string | null;
}

export type Checked = { ok: true; value: unknown } | { ok: false; message: string };

/** OpenAI's rule for a response format's name; a file name is made to fit rather than refused. */
export function schemaName(file: string): string {
  const name = basename(file)
    .replace(/\.json$/i, "")
    .replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 64);
  return name === "" ? "schema" : name;
}

export function jsonObjectOutput(): StructuredOutput {
  return {
    format: { type: "json_object" },
    check: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? null : `the answer is JSON but not an object (got ${kindOf(v)})`),
  };
}

/** Reads and compiles the schema before anything is sent, so a bad file costs no generation. */
export async function jsonSchemaOutput(file: string): Promise<StructuredOutput> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the --json-schema file: ${(err as Error).message}`);
  }
  let schema: unknown;
  try {
    schema = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    throw new Error(`the --json-schema file ${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new Error(`the --json-schema file ${file} must hold a JSON Schema object, got ${kindOf(schema)}`);
  }
  const validate = await compile(schema as JsonSchema, file);
  return {
    format: { type: "json_schema", json_schema: { name: schemaName(file), schema: schema as JsonSchema, strict: true } },
    check: (v) => validate(v),
  };
}

const MAX_REPORTED_ERRORS = 5;

async function compile(schema: JsonSchema, file: string): Promise<(v: unknown) => string | null> {
  // Ajv's default class is draft-07; a schema that names a newer draft needs that draft's class,
  // or its `$schema` is an unknown meta-schema and compiling fails.
  const draft = typeof schema.$schema === "string" ? schema.$schema : "";
  const { default: Ajv } = /2020-12/.test(draft) ? await import("ajv/dist/2020") : /2019-09/.test(draft) ? await import("ajv/dist/2019") : await import("ajv");
  const ajv = new Ajv({
    allErrors: true,
    // Unknown keywords are errors, so a misspelt "propertes" is reported instead of ignored; the
    // type/tuple/required lints would refuse ordinary schemas that servers take.
    strictSchema: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    // `format` needs a plugin per format; without one ajv would refuse "date-time" and the like.
    validateFormats: false,
  });
  let validate: ReturnType<typeof ajv.compile>;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw new Error(`ajv cannot compile the schema in ${file}: ${(err as Error).message}`);
  }
  return (v) => {
    if (validate(v)) return null;
    const errors = validate.errors ?? [];
    const shown = ajv.errorsText(errors.slice(0, MAX_REPORTED_ERRORS), { dataVar: "answer", separator: "; " });
    const more = errors.length > MAX_REPORTED_ERRORS ? ` (and ${errors.length - MAX_REPORTED_ERRORS} more)` : "";
    return `the answer does not match the schema in ${file}: ${shown}${more}`;
  };
}

/**
 * The answer's text parsed and checked. A cut-off answer is reported as such (not as the parse
 * error it usually causes), because the fix is a larger --max-tokens, not a different schema.
 */
export function checkAnswer(text: string, finishReason: FinishReason | null, out: StructuredOutput, maxTokens: number | undefined): Checked {
  let value: unknown;
  let problem: string | null;
  try {
    value = JSON.parse(text);
    problem = out.check(value);
  } catch (err) {
    problem = `the answer is not valid JSON (${(err as Error).message})`;
  }
  if (problem === null) return { ok: true, value };
  if (finishReason === "length") {
    const limit = maxTokens === undefined ? "the server's default max tokens" : `--max-tokens ${maxTokens}`;
    return { ok: false, message: `the output was cut off by ${limit} (finish_reason "length") before the JSON was complete; give a larger --max-tokens` };
  }
  return { ok: false, message: problem };
}

function kindOf(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`;
}
