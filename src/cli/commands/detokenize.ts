import { loadTokenizer } from "../../tokenizer/node";
import { parseCommand, required, tokenList } from "../args";

const spec = {
  name: "detokenize",
  summary: "Decode token ids to text.",
  usage: "detokenize --tokens 1,2,3 [--skip-special] [--json] [--model FILE.gguf]",
  details: `
  --tokens LIST     comma-separated token ids
  --skip-special    leave out special tokens such as <|endoftext|>
  --json            print {"text":"…"} (exact, escapes included) instead of the text and a newline
  --model FILE      use the vocabulary in this GGUF file's metadata (default: built-in Arcade100k)

Invalid UTF-8 in the decoded bytes becomes U+FFFD; ids outside the vocabulary are an error.`,
  options: {
    tokens: { type: "string" },
    "skip-special": { type: "boolean" },
    json: { type: "boolean" },
    model: { type: "string" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  const ids = tokenList("detokenize", required("detokenize", opts.tokens, "tokens"));
  const tok = await loadTokenizer(opts.model);
  const text = tok.decode(ids, { skipSpecial: opts["skip-special"] ?? false });
  process.stdout.write(opts.json ? `${JSON.stringify({ text })}\n` : `${text}\n`);
  return 0;
}
