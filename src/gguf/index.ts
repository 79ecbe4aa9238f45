export * from "./types";
export * from "./quant";
export * from "./metadata";
export * from "./reader";
export * from "./source";
export { encodeGGUF, writeGGUF, type ByteSink, type GGUFSpec, type TensorProgress, type TensorSpec } from "./writer";
export * from "./manifest";
