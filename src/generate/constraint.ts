/**
 * Structured output for one generation: the grammar an OutputSpec asks for, and the per-token
 * mask the generator applies before sampling. The generator knows only the TokenConstraint
 * interface; what "valid" means lives in the grammar.
 */
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN, type Tokenizer } from "../tokenizer/index";
import { alt, bytesOf, lit, node, seq, type GNode } from "./grammar";
import { advance, initial, type S } from "./json-matcher";
import { compileSchema } from "./json-schema";
import type { JsonSpec, OutputSpec } from "./output-spec";
import { maskFor, tokenIndex, type TokenIndex } from "./token-mask";

export interface TokenConstraint {
  /**
   * Sets the logits of tokens that cannot come next to -Infinity. `stopIds` (end-of-text tokens)
   * keep their logits only where the output may end.
   */
  apply(logits: Float32Array, stopIds: readonly number[]): void;
  /** Moves past a generated token (not a stop token). */
  accept(id: number): void;
  /** The output is finished and nothing may follow: generation ends here, as if a stop token came. */
  readonly complete: boolean;
}

function jsonNode(spec: JsonSpec): GNode {
  return spec.kind === "json_object" ? node({ k: "anyObject" }) : compileSchema(spec.schema);
}

const grammars = new Map<string, GNode>();
const GRAMMAR_CACHE = 64;

/** The grammar of a spec, cached by its JSON text (schemas inside are cached on their own too). */
export function buildGrammar(spec: OutputSpec): GNode {
  const key = JSON.stringify(spec);
  let g = grammars.get(key);
  if (g) return g;
  const text = spec.text ? jsonNode(spec.text) : undefined;
  if (!spec.tools) {
    if (!text) throw new Error("buildGrammar: the spec asks for nothing");
    g = text;
  } else {
    const calls = spec.tools.tools.map((t) =>
      seq([lit(`${TOOL_CALL_OPEN}{"name": ${JSON.stringify(t.name)}, "arguments": `), t.parameters ? compileSchema(t.parameters) : node({ k: "object", props: [] }), lit(`}${TOOL_CALL_CLOSE}`)]),
    );
    const list = node({ k: "list", item: alt(calls), sep: bytesOf("\n"), min: 1, max: spec.tools.parallel ? Infinity : 1 });
    g = spec.tools.required ? list : alt([text ?? node({ k: "text", notPrefix: bytesOf(TOOL_CALL_OPEN.trimEnd()) }), list]);
  }
  grammars.set(key, g);
  if (grammars.size > GRAMMAR_CACHE) grammars.delete(grammars.keys().next().value!);
  return g;
}

class GrammarConstraint implements TokenConstraint {
  private stacks: S[];

  constructor(
    grammar: GNode,
    private readonly index: TokenIndex,
  ) {
    this.stacks = initial(grammar);
  }

  get complete(): boolean {
    return this.stacks.every((s) => s === null);
  }

  apply(logits: Float32Array, stopIds: readonly number[]): void {
    const mask = maskFor(this.index, this.stacks);
    if (mask.free) return;
    const kept = stopIds.map((id) => logits[id]);
    const bits = mask.bits;
    let any = false;
    for (let w = 0; w < bits.length; w++) {
      const word = bits[w];
      if (word === 0xffffffff) {
        any = true;
        continue;
      }
      const base = w * 32;
      const end = Math.min(base + 32, logits.length);
      if (word === 0) {
        logits.fill(-Infinity, base, end);
        continue;
      }
      any = true;
      for (let i = base; i < end; i++) if (!(word & (1 << (i - base)))) logits[i] = -Infinity;
    }
    if (logits.length > bits.length * 32) logits.fill(-Infinity, bits.length * 32);
    if (mask.end) stopIds.forEach((id, i) => (logits[id] = kept[i]));
    // The grammar never admits a prefix that cannot be finished, so this is a bug, not bad input.
    if (!any && !mask.end) throw new Error("structured output reached a state where no token fits");
  }

  accept(id: number): void {
    const bytes = this.index.bytes[id];
    const next = bytes ? advance(this.stacks, bytes) : [];
    if (!next.length) throw new Error(`structured output: token ${id} does not fit the output format`);
    this.stacks = next;
  }
}

/** A fresh constraint for one generation (the grammar and the vocabulary index are shared). */
export function createConstraint(spec: OutputSpec, tokenizer: Tokenizer): TokenConstraint {
  return new GrammarConstraint(buildGrammar(spec), tokenIndex(tokenizer));
}
