/** Layer shards for 128 MB isolates, host-neutral: the planner, the shard runtime and the coordinator's engine. */
export * from "./plan";
export * from "./deploy";
export * from "./runtime";
export * from "./engine";
export * from "./links";
export * from "./embedding";
export * from "./row-hashes";
export * from "./replicas";
export * from "./protocol";
