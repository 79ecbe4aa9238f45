import { loadTokenizer } from "../../tokenizer/node";
import { parseCommand, UsageError } from "../args";

const spec = {
  name: "tokenize",
  summary: "Encode text to Arcade100k token ids (no BOS is added).",
  usage: "tokenize --text T [--allow-special] [--json] [--model FILE.gguf]",
  details: `
  --text T          the text to encode
  --allow-special   parse special-token strings such as <|endoftext|> or <|im_start|> in T as
                    their ids; without it they are encoded as ordinary text
  --json            print {"ids":[…]} instead of comma-separated ids
  --model FILE      use the vocabulary in this GGUF file's metadata (default: built-in Arcade100k)`,
  options: {
    text: { type: "string" },
    "allow-special": { type: "boolean" },
    json: { type: "boolean" },
    model: { type: "string" },
  },
} as const;

export async function run(argv: string[]): Promise<number> {
  const opts = parseCommand(spec, argv);
  if (!opts) return 0;
  // An empty --text is valid (no ids); only a missing one is a mistake.
  if (opts.text === undefined) throw new UsageError("tokenize: --text is required (see --help)");
  const tok = await loadTokenizer(opts.model);
  const ids = tok.encode(opts.text, { allowSpecial: opts["allow-special"] ?? false });
  process.stdout.write(opts.json ? `${JSON.stringify({ ids })}\n` : `${ids.join(",")}\n`);
  return 0;
}
