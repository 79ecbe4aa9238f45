import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Two cores on CI: files share generated fixtures through test/fixtures.ts.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
