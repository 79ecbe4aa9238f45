/** Arcade100k's added tokens, ids 100257–100288 in this order (docs/model.md, Special tokens). */
export const ARCADE_SPECIAL_START = 100257;

export const ARCADE_SPECIAL_TOKENS: readonly string[] = [
  "<|endoftext|>",
  "<|fim_prefix|>",
  "<|fim_middle|>",
  "<|fim_suffix|>",
  "<|fim_pad|>",
  "<gh_stars>",
  "<filename>",
  "<issue_start>",
  "<issue_comment>",
  "<issue_closed>",
  "<jupyter_start>",
  "<jupyter_text>",
  "<jupyter_code>",
  "<jupyter_output>",
  "<empty_output>",
  "<commit_before>",
  "<commit_msg>",
  "<commit_after>",
  "<reponame>",
  "<|endofprompt|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|pause|>",
  "<|reg0|>",
  "<|reg1|>",
  "<|reg2|>",
  "<|reg3|>",
  "<|reg4|>",
  "<|reg5|>",
  "<|reg6|>",
  "<|reg7|>",
  "<|extra0|>",
];

/** Number of ranked (mergeable) tokens: cl100k_base ranks 0..100255. */
export const ARCADE_RANK_COUNT = 100256;
/** The model's embedding rows; ids without a token are padding (docs/model.md, Special tokens). */
export const ARCADE_VOCAB_SIZE = 100352;
export const ENDOFTEXT_ID = 100257;
