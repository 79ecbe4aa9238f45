/** The model, host-neutral: config from GGUF, the tensor table, tensors by role, the reference forward pass, the engine interface. */
export * from "./config";
export * from "./tensors";
export * from "./weights";
export * from "./reference";
export * from "./engine";
export * from "./load";
