// scripts/build-local.mjs writes build/local/assets.js: edgelm/local's worker script and kernels as one module.
declare module "*/build/local/assets.js" {
  const assets: Record<string, { type: string; text?: string; base64?: string }>;
  export default assets;
}
