/** What a request asks the output to be, in the constraint engine's terms (docs/structured-output.md). */

/** JSON mode: any JSON object. A schema: a value that the JSON Schema subset accepts. */
export type JsonSpec = { kind: "json_object" } | { kind: "json_schema"; schema: object };

export type ToolChoice = "none" | "auto" | "required" | { name: string };

export interface ToolsSpec {
  /** The callable functions; `parameters` is a JSON Schema object (absent: no arguments). */
  tools: readonly { name: string; parameters?: object }[];
  /** true: the answer must be calls; false ("auto"): text, or calls. */
  required: boolean;
  /** Several calls in one answer (else exactly one). */
  parallel: boolean;
}

export interface OutputSpec {
  /** The answer when it is not tool calls; undefined: free text. */
  text?: JsonSpec;
  tools?: ToolsSpec;
}
