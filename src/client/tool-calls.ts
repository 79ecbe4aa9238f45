/**
 * Streamed tool calls arrive in pieces keyed by `index`: the first piece of a call names it, the
 * rest carry slices of its JSON arguments, and pieces of parallel calls may interleave. This puts
 * them back together the way a non-streamed answer's `message.tool_calls` would have them.
 */
import type { ToolCall, ToolCallDelta } from "./types";

export class ToolCallAccumulator {
  /** The calls so far, in index order; each object grows in place as its pieces arrive. */
  calls: ToolCall[] = [];
  readonly #byIndex = new Map<number, ToolCall>();
  #last: number | undefined;

  /** Adds one delta's `tool_calls` (anything that is not an array is ignored). */
  add(deltas: readonly ToolCallDelta[] | null | undefined): void {
    if (!Array.isArray(deltas)) return;
    for (const d of deltas as unknown[]) {
      if (typeof d !== "object" || d === null) continue;
      const piece = d as Partial<ToolCallDelta>;
      const index = this.#indexOf(piece);
      let call = this.#byIndex.get(index);
      if (!call) {
        call = { id: "", type: "function", function: { name: "", arguments: "" } };
        this.#byIndex.set(index, call);
        this.calls = [...this.#byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
      }
      if (typeof piece.id === "string" && piece.id !== "") call.id = piece.id;
      if (piece.type === "function") call.type = piece.type;
      const fn = piece.function;
      // The name is set, not appended: servers that repeat it in later pieces would double it otherwise.
      if (typeof fn?.name === "string" && fn.name !== "") call.function.name = fn.name;
      if (typeof fn?.arguments === "string") call.function.arguments += fn.arguments;
      this.#last = index;
    }
  }

  /**
   * The piece's `index`. Servers that leave it out are read the only way that makes sense: a piece
   * with an id starts a new call, one without continues the call before it.
   */
  #indexOf(piece: Partial<ToolCallDelta>): number {
    if (typeof piece.index === "number" && Number.isInteger(piece.index) && piece.index >= 0) return piece.index;
    if (this.#last !== undefined && (piece.id === undefined || piece.id === "")) return this.#last;
    return this.#byIndex.size === 0 ? 0 : Math.max(...this.#byIndex.keys()) + 1;
  }
}
