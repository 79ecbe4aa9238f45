/** One seeded generation under a schema on a served model: the test's and the opt-in script's loop. */
import type { ServedModel } from "../../src/api/deps";
import { createConstraint, generate } from "../../src/generate/index";

export async function sampleUnderSchema(model: ServedModel, schema: object, prompt: number[], seed: number): Promise<{ text: string; finish: string; tokens: number }> {
  const constraint = createConstraint({ text: { kind: "json_schema", schema } }, model.tokenizer);
  let text = "";
  let finish = "";
  let tokens = 0;
  for await (const ev of generate(model.engine, model.tokenizer, { prompt, maxTokens: 256, seed, sampling: { temperature: 1 }, constraint })) {
    if (ev.type === "token") {
      text += ev.text;
      tokens++;
    } else if (ev.type === "done") finish = ev.finishReason;
  }
  return { text, finish, tokens };
}
