/** Cost-tiered routing between the edge engine and a GPU origin, host-neutral. */
export * from "./config";
export * from "./policy";
export * from "./cost";
export * from "./breaker";
export * from "./accounting";
export * from "./metrics";
export * from "./origin";
export * from "./router";
