/**
 * The layering of docs/architecture.md as rules. `npm test` runs them
 * (test/architecture/layers.test.ts); a broken rule fails with its name.
 *
 * Layers, bottom to top: util · gguf ← model ← engine ← (shard, generate) ← api ← routing ← hosts,
 * and local (the browser's host: api and below, never routing),
 * with tokenizer above gguf and below generate and api. The kernels (assembly/) are not
 * TypeScript imports: the engine loads their .wasm builds.
 */
const { builtinModules } = require("node:module");

const LIB = "util|gguf|tokenizer|model|engine|shard|generate|api|routing|client|playground|local";
/** Node's built-ins as dependency-cruiser names them once resolved ("fs", "fs/promises", "node:test"). */
const NODE_BUILTIN = `^(node:|(${builtinModules.filter((m) => !m.startsWith("_")).map((m) => m.replace(/[/]/g, "\\/")).join("|")})$)`;

/** Every folder under src/ (and weights-tools/) that `layer` may NOT import. */
function onlyBelow(layer, allowed) {
  const mayImport = [layer, ...allowed].join("|");
  return {
    name: `${layer}-imports-only-below`,
    comment: `src/${layer}/ may import only ${allowed.length ? allowed.join(", ") : "itself"} (docs/architecture.md, Layers)`,
    severity: "error",
    from: { path: `^src/${layer}/` },
    to: { path: "^(src|weights-tools)/", pathNot: `^src/(${mayImport})/` },
  };
}

module.exports = {
  forbidden: [
    onlyBelow("util", []),
    onlyBelow("gguf", ["util"]),
    onlyBelow("tokenizer", ["gguf", "util"]),
    onlyBelow("model", ["gguf", "util"]),
    onlyBelow("engine", ["model", "gguf", "util"]),
    onlyBelow("shard", ["engine", "model", "gguf", "util"]),
    onlyBelow("generate", ["engine", "model", "tokenizer", "gguf", "util"]),
    onlyBelow("api", ["shard", "generate", "engine", "model", "tokenizer", "gguf", "util"]),
    onlyBelow("routing", ["api", "shard", "generate", "engine", "model", "tokenizer", "gguf", "util"]),
    onlyBelow("client", ["util"]),
    // The page bundled for browsers (scripts/build-playground.mjs): servers through the client, the device through edgelm/local.
    onlyBelow("playground", ["client", "local", "util"]),
    {
      name: "playground-uses-local-page-side-only",
      comment: "the playground reaches the on-device engine only through edgelm/local's page side (index.ts): the engine stays in the Web Worker's bundle",
      severity: "error",
      from: { path: "^src/playground/" },
      to: { path: "^src/local/", pathNot: "^src/local/(index|protocol)\\.ts$" },
    },
    onlyBelow("local", ["api", "generate", "engine", "model", "tokenizer", "gguf", "util"]),
    {
      name: "local-page-imports-only-protocol",
      comment: "edgelm/local's page side (src/local/index.ts) imports only the message protocol: the engine stays in the Web Worker's bundle (docs/local.md)",
      severity: "error",
      from: { path: "^src/local/index\\.ts$" },
      to: { path: "^(src|weights-tools)/", pathNot: "^src/local/protocol\\.ts$" },
    },
    {
      name: "weights-tools-imports-gguf-tokenizer-shard-node",
      comment: "weights-tools/ may import gguf, tokenizer, shard, util and Node (docs/architecture.md, Layers)",
      severity: "error",
      from: { path: "^weights-tools/" },
      to: { path: "^src/", pathNot: "^src/(gguf|tokenizer|shard|util)/" },
    },
    {
      name: "library-imports-no-host",
      comment: "library code never imports a host (src/worker*, src/node/, src/cli/)",
      severity: "error",
      from: { path: `^src/(${LIB})/` },
      to: { path: "^src/(worker|node|cli)(/|\\.ts$)" },
    },
    {
      name: "node-builtins-only-in-node-ts",
      comment: "in a library folder only node.ts may import node: modules (docs/architecture.md, Conventions)",
      severity: "error",
      from: { path: `^src/(${LIB})/`, pathNot: "/node\\.ts$" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "host-neutral-imports-no-node-ts",
      comment: "host-neutral library files never import a node.ts face: that would make them Node-only",
      severity: "error",
      from: { path: `^src/(${LIB})/`, pathNot: "/node\\.ts$" },
      to: { path: "^src/[^/]+/node\\.ts$" },
    },
    {
      name: "worker-bundle-has-no-node",
      comment: "nothing the Worker bundle reaches (from src/worker.ts or a shard Durable Object) imports node: modules",
      severity: "error",
      from: { path: "^src/(worker\\.ts|shard/worker\\.ts)$" },
      to: { reachable: true, path: NODE_BUILTIN },
    },
    {
      name: "local-bundle-has-no-node",
      comment: "nothing edgelm/local's browser bundles reach imports node: modules",
      severity: "error",
      from: { path: "^src/local/(index|worker)\\.ts$" },
      to: { reachable: true, path: NODE_BUILTIN },
    },
    {
      name: "file-names-kebab-case",
      comment: "file names are kebab-case (docs/architecture.md, Conventions)",
      severity: "error",
      from: { path: "[a-z][A-Z][^/]*$" },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^build/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"], extensions: [".ts", ".mjs", ".js", ".json"] },
    moduleSystems: ["es6", "cjs"],
  },
};
