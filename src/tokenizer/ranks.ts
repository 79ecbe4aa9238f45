/**
 * The cl100k_base rank data (docs/model.md, Where the ranks come from): the raw OpenAI `.tiktoken` file, lines "base64 rank".
 *
 * Platform choice: this module only parses text. Where the text comes from is registered by the
 * platform — `node.ts` reads it from node_modules in Node; a Worker imports the same file as a
 * text module (wrangler `Text` rule) and passes it to `setCl100kRankSource`. Keeping `node:fs` out
 * of here keeps the encoder bundleable for workerd.
 */

/** Tokens indexed by rank, each a binary string (one char per byte). */
export function parseTiktokenRanks(text: string): string[] {
  const out: string[] = [];
  let line = 0;
  let i = 0;
  while (i < text.length) {
    let nl = text.indexOf("\n", i);
    if (nl < 0) nl = text.length;
    const sp = text.indexOf(" ", i);
    line++;
    if (nl > i) {
      if (sp < 0 || sp > nl) throw new Error(`rank file line ${line}: expected "base64 rank"`);
      const rank = Number(text.slice(sp + 1, nl).trim());
      if (rank !== out.length) throw new Error(`rank file line ${line}: rank ${rank} out of order (expected ${out.length})`);
      out.push(atob(text.slice(i, sp)));
    }
    i = nl + 1;
  }
  return out;
}

let source: (() => string) | undefined;

/** Registers where the cl100k_base rank text comes from (called once by the platform entry). */
export function setCl100kRankSource(get: () => string): void {
  source = get;
}

export function cl100kRankText(): string {
  if (!source) {
    throw new Error(
      "cl100k_base ranks are not available: import the tokenizer from src/tokenizer/node (Node), " +
        "or call setCl100kRankSource() with the text of gpt-tokenizer/data/cl100k_base.tiktoken",
    );
  }
  return source();
}
