/** POST /v1/chat/completions: messages → template (zephyr / ChatML) → token ids → generation. */
import { createConstraint } from "../../generate/index";
import { encodeChat } from "../../tokenizer/index";
import { chatChunks, collectChat, type ChatFormatContext } from "../chat-format";
import { parseChatRequest } from "../chat-request";
import { DEFAULT_CHAT_MAX_TOKENS, type ApiDeps, type ServedModel } from "../deps";
import { invalid } from "../errors";
import { responseId, unixNow } from "../ids";
import { admit, checkContext, checkPromptIds } from "../prompt";
import { respond, startRun } from "../run";
import { outputSpec } from "../structured-request";
import { checkModelName } from "./model";

export async function chatCompletions(req: Request, body: unknown, deps: ApiDeps, model: ServedModel): Promise<Response> {
  const r = parseChatRequest(body);
  checkModelName(r.model, model);
  const { tokenizer, engine, chatTemplate } = model;
  if (!chatTemplate) {
    throw invalid("messages", `the model "${model.id}" has no chat template (a base model): use /v1/completions, or serve it with --chat-template zephyr|chatml`, "no_chat_template");
  }
  const spec = outputSpec(r);
  if (spec && r.stop.length) throw invalid("stop", "stop cannot be combined with response_format json_object/json_schema or tools: the answer ends when the JSON value or the calls are complete");
  const tools = r.toolChoice !== "none" && r.tools.length ? r.tools : undefined;
  let ids: number[];
  try {
    ids = encodeChat(tokenizer, r.messages, { template: chatTemplate, tools });
  } catch (err) {
    throw invalid("messages", (err as Error).message);
  }
  checkPromptIds(ids, engine.config.vocabSize);
  const left = engine.config.contextLength - ids.length;
  const asked = r.maxTokens ?? Math.min(deps.chatDefaultMaxTokens ?? DEFAULT_CHAT_MAX_TOKENS, left);
  if (asked < 1) checkContext(ids.length, 1, engine.config.contextLength, "messages");
  checkContext(ids.length, asked, engine.config.contextLength, "max_tokens");
  const given = r.maxTokens !== undefined;
  const maxTokens = await admit(deps, model, { endpoint: "chat", promptTokens: ids.length, maxTokens: asked, maxTokensParam: "max_tokens", maxTokensGiven: given });

  // The template's end-of-turn tokens end the answer (ChatML's <|im_end|>, and eos for both).
  const stopTokenIds = [tokenizer.eosId, chatTemplate === "chatml" ? tokenizer.specialId("<|im_end|>") : undefined].filter((t): t is number => t !== undefined);
  const constraint = spec && createConstraint(spec, tokenizer);
  const run = await startRun(deps, model, { prompt: ids, maxTokens, sampling: r.sampling, seed: r.seed, stop: r.stop, stopTokenIds, logprobs: r.logprobs, constraint }, req, body);
  const ctx: ChatFormatContext = {
    id: responseId("chatcmpl"),
    created: unixNow(),
    model: model.id,
    logprobs: r.logprobs !== undefined,
    includeUsage: r.includeUsage,
    tokenizer,
    tools: spec?.tools !== undefined,
    promptIds: r.returnTokenIds ? ids : undefined,
  };
  return respond(run, r.stream, (ev) => chatChunks(ev, ctx), (ev) => collectChat(ev, ctx));
}
