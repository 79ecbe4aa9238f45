import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The soak file runs for ~8 minutes on one worker. On a clean clone vitest has no timings and
 * orders files by size, which put the soak last: the other worker then idled for most of it.
 * Started first, it overlaps the rest of the suite.
 */
class SoakFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const soak = (f: TestSpecification) => /[/\\]test[/\\]soak[/\\]/.test(f.moduleId);
    return [...sorted.filter(soak), ...sorted.filter((f) => !soak(f))];
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    // Two cores on CI: files share generated fixtures through test/fixtures.ts.
    fileParallelism: true,
    maxWorkers: 2,
    sequence: { sequencer: SoakFirst },
  },
});
