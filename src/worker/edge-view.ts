/**
 * What the router sees of this isolate's edge: the load state, whether the queue would refuse, the
 * prompt size (counted with the model's own tokenizer once loaded, estimated before), and the
 * CPU estimate of budget.ts.
 */
import type { ChatRequest } from "../api/chat-request";
import type { CompletionRequest } from "../api/completion-request";
import type { ModelState } from "../api/deps";
import type { GenerationQueue } from "../api/queue";
import type { EdgeView } from "../routing/router";
import { encodeChat } from "../tokenizer/index";
import { estimate } from "./budget";
import type { WorkerConfig } from "./env";

const utf8 = new TextEncoder();
/** Arcade100k averages about 4 bytes of English per token; a template adds a few tokens per message. */
const BYTES_PER_TOKEN = 4;
const TEMPLATE_TOKENS_PER_MESSAGE = 4;
/** Measured on Arcade100k: the text around the tool list (with a system turn of its own), and each tool's JSON wrapper. */
const TOOLS_BLOCK_TOKENS = 70;
const TOKENS_PER_TOOL = 26;

export function edgeView(state: ModelState, queue: GenerationQueue, cfg: WorkerConfig): EdgeView {
  return {
    state: state.status,
    // Up to MAX_BATCH generations run at once: full only when they all run (or the KV budget is
    // reserved: any request needs a block) and QUEUE_DEPTH already wait.
    queueFull: queue.wouldRefuse(1),
    countPromptTokens(endpoint, r) {
      const model = state.status === "ready" ? state.model : undefined;
      if (endpoint === "completions") {
        const { prompt, allowSpecialTokens } = r as CompletionRequest;
        if (typeof prompt !== "string") return prompt.length;
        return model ? model.tokenizer.encode(prompt, { allowSpecial: allowSpecialTokens }).length : Math.ceil(utf8.encode(prompt).length / BYTES_PER_TOKEN);
      }
      const { messages, toolChoice } = r as ChatRequest;
      // The tools go into the prompt (the system turn) unless tool_choice is "none".
      const tools = toolChoice === "none" ? undefined : (r as ChatRequest).tools;
      if (model?.chatTemplate) {
        try {
          return encodeChat(model.tokenizer, messages, { template: model.chatTemplate, tools }).length;
        } catch {
          // The edge will answer this one with its own 400; the estimate below is enough to route it.
        }
      }
      const bytes = (text: string) => Math.ceil(utf8.encode(text).length / BYTES_PER_TOKEN);
      const inMessages = messages.reduce((n, m) => n + bytes(m.content) + (m.toolCalls ?? []).reduce((k, c) => k + bytes(c.name + c.arguments), 0) + TEMPLATE_TOKENS_PER_MESSAGE, 0);
      return inMessages + (tools?.length ? TOOLS_BLOCK_TOKENS + tools.length * TOKENS_PER_TOOL + bytes(JSON.stringify(tools)) : 0);
    },
    cpu(promptTokens, maxTokens) {
      const e = estimate({ promptTokens, maxTokens }, cfg);
      return e && { cpuMs: e.cpuMs, budgetMs: e.budgetMs };
    },
  };
}
