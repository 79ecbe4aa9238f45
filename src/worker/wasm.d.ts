// wrangler's bundler (rule CompiledWasm, its default for *.wasm) and the test harness hand these over compiled.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
