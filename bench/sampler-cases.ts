/**
 * The sampler bench's inputs for one logit shape: 8 seeded logit vectors at the real vocabulary
 * and a 200-token history (its second half the generated tokens) for the penalties. One
 * definition for the bench in Node and for its Worker in workerd (bench/sampler-workerd.ts), so
 * both time the same draws.
 */
import { seededRandom } from "../src/generate/sampler";
import { V, logitsFor, type Shape } from "../test/generate/sampler-harness";

export interface SamplerCase {
  context: number[];
  generated: number[];
  inputs: Float32Array[];
}

export function samplerCase(shape: Shape): SamplerCase {
  const rng = seededRandom(shape === "flat" ? 11 : 12);
  const context = Array.from({ length: 200 }, () => Math.floor(rng() * V));
  return { context, generated: context.slice(100), inputs: Array.from({ length: 8 }, () => logitsFor(shape, rng, context)) };
}
