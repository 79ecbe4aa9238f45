/**
 * The model's text → OpenAI tool calls, as it streams. When tools are offered the output is either
 * plain text or calls written as `<tool_call>\n{"name": "N", "arguments": {...}}\n</tool_call>`
 * (several separated by a newline); the constraint guarantees that shape, so this reader only has
 * to find the name and the arguments' extent. It holds text back only while it could still be the
 * start of a call.
 */
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from "../tokenizer/index";
import type { ToolCall, ToolCallDelta } from "./chat-format";
import { randomId } from "./ids";

const HEAD = `${TOOL_CALL_OPEN}{"name": "`;
const ARGS = `, "arguments": `;
const TAIL = `}${TOOL_CALL_CLOSE}`;

export interface ToolCallOutput {
  /** Plain text for `content`. */
  content: string;
  /** Pieces of calls for `tool_calls` deltas. */
  calls: ToolCallDelta[];
}

export class ToolCallReader {
  private buf = "";
  private at = 0;
  private mode: "start" | "text" | "calls" = "start";
  /** Within a call: where the reader is. */
  private part: "head" | "name" | "args-key" | "args" | "tail" | "sep" = "head";
  private depth = 0;
  private inString = false;
  private escaped = false;
  private readonly done: ToolCall[] = [];
  private current: ToolCall | undefined;

  /** Calls read so far (the last one may be cut short when generation stopped at max_tokens). */
  get toolCalls(): ToolCall[] {
    return this.current ? [...this.done, this.current] : this.done;
  }

  push(text: string): ToolCallOutput {
    this.buf += text;
    const out: ToolCallOutput = { content: "", calls: [] };
    if (this.mode === "start") {
      // Held while the text so far could still become the opening tag.
      if (this.buf.length < TOOL_CALL_OPEN.length && TOOL_CALL_OPEN.startsWith(this.buf)) return out;
      this.mode = this.buf.startsWith(TOOL_CALL_OPEN) ? "calls" : "text";
    }
    if (this.mode === "text") {
      out.content = this.buf.slice(this.at);
      this.at = this.buf.length;
      return out;
    }
    this.readCalls(out);
    return out;
  }

  /** Whatever is still held at the end (text that only looked like the start of a call). */
  flush(): ToolCallOutput {
    if (this.mode !== "start") return { content: "", calls: [] };
    this.mode = "text";
    const content = this.buf;
    this.at = this.buf.length;
    return { content, calls: [] };
  }

  private readCalls(out: ToolCallOutput): void {
    const b = this.buf;
    while (this.at < b.length) {
      switch (this.part) {
        case "sep":
          this.at++; // the newline between calls
          this.part = "head";
          break;
        case "head":
          if (b.length - this.at < HEAD.length) return;
          this.at += HEAD.length;
          this.part = "name";
          break;
        case "name": {
          const q = b.indexOf('"', this.at);
          if (q < 0) return;
          const name = b.slice(this.at, q);
          this.at = q + 1;
          this.current = { id: `call_${randomId()}`, type: "function", function: { name, arguments: "" } };
          out.calls.push({ index: this.done.length, id: this.current.id, type: "function", function: { name, arguments: "" } });
          this.part = "args-key";
          break;
        }
        case "args-key":
          if (b.length - this.at < ARGS.length) return;
          this.at += ARGS.length;
          this.part = "args";
          this.depth = 0;
          break;
        case "args": {
          const from = this.at;
          let end = -1;
          for (let i = from; i < b.length; i++) {
            const c = b[i];
            if (this.inString) {
              if (this.escaped) this.escaped = false;
              else if (c === "\\") this.escaped = true;
              else if (c === '"') this.inString = false;
            } else if (c === '"') this.inString = true;
            else if (c === "{" || c === "[") this.depth++;
            else if (c === "}" || c === "]") {
              this.depth--;
              if (this.depth === 0) {
                end = i + 1;
                break;
              }
            }
          }
          const stop = end < 0 ? b.length : end;
          const piece = b.slice(from, stop);
          this.at = stop;
          if (piece && this.current) {
            this.current.function.arguments += piece;
            out.calls.push({ index: this.done.length, function: { arguments: piece } });
          }
          if (end < 0) return;
          this.part = "tail";
          break;
        }
        case "tail":
          if (b.length - this.at < TAIL.length) return;
          this.at += TAIL.length;
          if (this.current) this.done.push(this.current);
          this.current = undefined;
          this.part = "sep";
          break;
      }
    }
  }
}
