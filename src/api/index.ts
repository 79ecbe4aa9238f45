/** The platform-neutral OpenAI-compatible API (no Node imports): hosts call handleRequest. */
export { handleRequest } from "./handle-request";
export { RequestLines, pathOf, type RequestLine } from "./request-line";
export { GenerationQueue, type KVBudget, type QueueCapacity, type Release } from "./queue";
export { DEFAULT_MAX_BATCH_TOKENS, queueCapacity, withBatching, type BatchingOptions } from "./batching";
export { StepScheduler } from "./step-scheduler";
export { ApiError, type ErrorBody } from "./errors";
export { parseCompletionRequest, type CompletionRequest } from "./completion-request";
export { parseChatRequest, type ChatRequest } from "./chat-request";
export type { Admission, ApiDeps, GenerationSummary, LoadRetry, ModelFileSource, ModelState, PageAssets, RouteContext, ServedModel } from "./deps";
export { DEFAULT_MAX_BODY_BYTES, DEFAULT_CHAT_MAX_TOKENS } from "./deps";
export {
  buildServedModel,
  chooseEngine,
  modelIdFromFile,
  readModelFacts,
  DEFAULT_ENGINE,
  ENGINE_NAMES,
  type ChatChoice,
  type EngineName,
  type LoadedModel,
  type ModelFacts,
} from "./served-model";
