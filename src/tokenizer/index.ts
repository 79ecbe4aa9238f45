/** Node entry: the platform-neutral API with the rank file read from node_modules (see ./ranks). */
import "./ranksNode";

export * from "./core";
