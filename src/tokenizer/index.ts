/**
 * Platform-neutral entry (Workers): no file access. Register the rank text first, e.g.
 * `import ranks from "gpt-tokenizer/data/cl100k_base.tiktoken"` (wrangler Text rule) then
 * `setCl100kRankSource(() => ranks)`. Node code imports `./node`, which does that from node_modules.
 */
export { Tokenizer, TokenType, arcade100kRanks, type EncodeOptions, type DecodeOptions } from "./tokenizer";
export { setCl100kRankSource, parseTiktokenRanks } from "./ranks";
export * from "./specials";
export { ARCADE_PATTERN_ORIGINAL, ARCADE_PATTERN_SOURCE, pretokenize } from "./pretokenize";
export { StreamDetokenizer, type StopReason, type StreamEvent, type StreamOptions, type TokenText } from "./stream";
export { encodeChat, renderChatText, renderToolCall, pythonJson, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, chatTemplateFromJinja, chatTemplateFromGGUF, type ChatMessage, type ChatOptions, type ChatTemplateName, type ChatTool } from "./chat";
export { arcade100kGGUFMetadata, arcade100kMerges, placeholderVocabGGUFMetadata } from "./gguf";
