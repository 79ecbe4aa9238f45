/** The bottom layer: small helpers every other layer may use. */
export * from "./random";
export * from "./sse-reader";
