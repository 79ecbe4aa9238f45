/** Generation over any Engine: sampling, logprobs and the token-event loop, host-neutral. */
export * from "./sampler";
export * from "./logprobs";
export * from "./generator";
export * from "./output-spec";
export { compileSchema, SchemaError } from "./json-schema";
export { buildGrammar, createConstraint, type TokenConstraint } from "./constraint";
export { perplexity, planChunks, type ChunkPlan, type PerplexityOptions, type PerplexityResult } from "./perplexity";
export { comparePosition, type KlDivergence, type PositionComparison } from "./kl-divergence";
