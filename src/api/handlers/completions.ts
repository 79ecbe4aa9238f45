/** POST /v1/completions */
import { createConstraint } from "../../generate/index";
import { collectCompletion, completionChunks, type FormatContext } from "../completion-format";
import { parseCompletionRequest } from "../completion-request";
import type { ApiDeps, ServedModel } from "../deps";
import { responseId, unixNow } from "../ids";
import { admit, checkContext, checkPromptIds } from "../prompt";
import { respond, startRun } from "../run";
import { invalid } from "../errors";
import { jsonSpec } from "../structured-request";
import { checkModelName } from "./model";

export async function completions(req: Request, body: unknown, deps: ApiDeps, model: ServedModel): Promise<Response> {
  const r = parseCompletionRequest(body);
  checkModelName(r.model, model);
  const { tokenizer, engine } = model;
  const json = jsonSpec(r.responseFormat);
  const spec = json && { text: json };
  if (spec && r.stop.length) throw invalid("stop", "stop cannot be combined with response_format json_object/json_schema: the answer ends when the JSON value is complete");
  const ids = typeof r.prompt === "string" ? tokenizer.encode(r.prompt, { allowSpecial: r.allowSpecialTokens }) : r.prompt;
  checkPromptIds(ids, engine.config.vocabSize);
  checkContext(ids.length, r.maxTokens, engine.config.contextLength, "max_tokens");
  const maxTokens = await admit(deps, model, { endpoint: "completions", promptTokens: ids.length, maxTokens: r.maxTokens, maxTokensParam: "max_tokens", maxTokensGiven: r.maxTokensGiven });

  const constraint = spec && createConstraint(spec, tokenizer);
  const run = await startRun(deps, model, { prompt: ids, maxTokens, sampling: r.sampling, seed: r.seed, stop: r.stop, logprobs: r.logprobs, constraint }, req, body);
  const ctx: FormatContext = {
    id: responseId("cmpl"),
    created: unixNow(),
    model: model.id,
    echo: r.echo ? (typeof r.prompt === "string" ? r.prompt : tokenizer.decode(ids)) : undefined,
    logprobs: r.logprobs !== undefined,
    includeUsage: r.includeUsage,
    promptIds: r.returnTokenIds ? ids : undefined,
  };
  return respond(run, r.stream, (ev) => completionChunks(ev, ctx), (ev) => collectCompletion(ev, ctx));
}
