/**
 * The production sampler draws exactly what the reference draws, at the real
 * vocabulary size, for every combination of warpers and penalties: the same
 * token for the same uniform draw, step after step, with a history the
 * penalties act on. Timings are never checked here (bench/sampler.ts).
 */
import { describe, expect, it } from "vitest";
import type { SamplingOptions } from "../../src/generate/sampler";
import { V, compareRun, type Shape } from "./sampler-harness";

const CARD = { temperature: 0.7, topP: 0.95 }; // the model card's settings
const PENALTIES = { repetitionPenalty: 1.2, presencePenalty: 0.5, frequencyPenalty: 0.3 };

/** Cases whose reference costs little per step (greedy, small top-k): 200 steps of one draw. */
const cheap: [string, Partial<SamplingOptions>][] = [
  ["greedy", { temperature: 0 }],
  ["greedy with penalties", { temperature: 0, ...PENALTIES }],
  ["top-k 40", { temperature: 0.7, topK: 40 }],
  ["all combined (top-k 50)", { temperature: 0.7, topK: 50, topP: 0.95, minP: 0.05, ...PENALTIES }],
];

/**
 * Cases where the reference sorts or walks the whole vocabulary (~0.1 s a step): fewer
 * steps, each checked at several uniform draws.
 */
const full: [string, Partial<SamplingOptions>][] = [
  ["temperature alone", { temperature: 0.7 }],
  ["top-p alone (model card)", CARD],
  ["min-p alone", { temperature: 0.7, minP: 0.05 }],
  ["top-p and min-p", { temperature: 0.7, topP: 0.9, minP: 0.02 }],
  ["all combined without top-k", { temperature: 0.8, topP: 0.95, minP: 0.05, ...PENALTIES }],
  ["repetition penalty", { ...CARD, repetitionPenalty: 1.5 }],
  ["presence penalty", { ...CARD, presencePenalty: 1.5 }],
  ["frequency penalty", { ...CARD, frequencyPenalty: 1 }],
  ["large top-k with top-p", { temperature: 0.9, topK: 3000, topP: 0.9 }],
  ["top-k of the whole vocabulary", { temperature: 1, topK: V }],
  ["cold (temperature 0.05)", { temperature: 0.05, topP: 0.95 }],
  ["frozen (temperature 0.002: most weights underflow to 0)", { temperature: 0.002, minP: 1e-30 }],
  ["hot (temperature 2)", { temperature: 2, topP: 0.95 }],
  ["hot, untruncated", { temperature: 2 }],
];

/** The same cases on every shape would take minutes: these cover the rest on the shapes where they differ most. */
const shapes: Shape[] = ["flat", "peaked"];
const moreShapes: [Shape, string[]][] = [
  ["long-tail", ["top-p alone (model card)", "min-p alone", "temperature alone", "all combined without top-k"]],
  ["ties", ["top-p alone (model card)", "min-p alone", "temperature alone", "top-k 40", "all combined (top-k 50)", "greedy"]],
  ["masked", ["top-p alone (model card)", "temperature alone", "min-p alone"]],
];

function check(shape: Shape, name: string, sampling: Partial<SamplingOptions>, steps: number, draws: number, seed: number) {
  const bad = compareRun({ shape, sampling, steps, draws, seed });
  expect(bad.slice(0, 5), `${shape}, ${name}: ${bad.length} of ${steps * draws} draws differ`).toEqual([]);
}

describe("sampler matches the reference draw for draw at vocab 100,352", () => {
  for (const shape of shapes) {
    for (const [k, [name, sampling]] of cheap.entries()) {
      it(`${shape}: ${name} (200 steps)`, () => check(shape, name, sampling, 200, 1, 100 + k));
    }
    for (const [k, [name, sampling]] of full.entries()) {
      it(`${shape}: ${name} (12 steps × 16 draws)`, () => check(shape, name, sampling, 12, 16, 200 + k));
    }
  }
  for (const [shape, names] of moreShapes) {
    for (const name of names) {
      const [, sampling] = [...cheap, ...full].find(([n]) => n === name)!;
      const isCheap = cheap.some(([n]) => n === name);
      it(`${shape}: ${name}`, () => check(shape, name, sampling, isCheap ? 200 : 12, isCheap ? 1 : 16, 300));
    }
  }
});
