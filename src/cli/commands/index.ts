/** The CLI's commands, one file each under this folder, loaded only when called. */
export interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

function lazy(file: string, summary: string): Command {
  return {
    summary,
    async run(argv) {
      const mod = (await import(`./${file}.ts`)) as { run(argv: string[]): Promise<number> };
      return mod.run(argv);
    },
  };
}

export const commands: Record<string, Command> = {
  inspect: lazy("inspect", "print a GGUF file's metadata and tensor table"),
  convert: lazy("convert", "convert a Hugging Face StableLM checkpoint to GGUF"),
  synth: lazy("synth", "write a synthetic (random-weight) StableLM model"),
  download: lazy("download", "download a Stable LM 2 checkpoint from Hugging Face and convert it"),
  logits: lazy("logits", "print the next-token logits for a token sequence"),
  generate: lazy("generate", "generate tokens from a prompt"),
  perplexity: lazy("perplexity", "measure perplexity over a text, and KL divergence from a base model"),
  serve: lazy("serve", "serve the OpenAI-compatible API over HTTP (Node)"),
  tokenize: lazy("tokenize", "text → Arcade100k token ids"),
  detokenize: lazy("detokenize", "token ids → text"),
  "shard-plan": lazy("shard-plan", "plan Worker-sized layer/head shards of a GGUF and write their wrangler configs"),
  complete: lazy("complete", "stream a completion or chat from an edgelm (or any OpenAI-compatible) server"),
};
