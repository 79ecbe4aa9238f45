/**
 * The reference StableLM forward pass (docs/model.md, The forward pass): plain TypeScript, float64
 * activations, weights dequantized a row at a time. Obviously correct beats
 * fast: this is the oracle the WASM engine is checked against.
 */
import { TensorType } from "../gguf/types";
import type { StableLMConfig } from "./config";
import { matrixRow, type Matrix, type ModelWeights, type Norm } from "./weights";

/** One sequence's KV cache: per layer, per position, post-rotary K and V ([numKVHeads·headDim] each). */
export class Sequence {
  readonly keys: Float64Array[][];
  readonly values: Float64Array[][];

  constructor(numLayers: number) {
    this.keys = Array.from({ length: numLayers }, () => []);
    this.values = Array.from({ length: numLayers }, () => []);
  }

  /** Positions cached in a layer (layers of a shard may be the only ones filled). */
  length(layer = 0): number {
    return this.keys[layer].length;
  }

  /** Forget positions ≥ n in every layer. */
  truncate(n: number): void {
    for (const k of this.keys) k.length = Math.min(k.length, n);
    for (const v of this.values) v.length = Math.min(v.length, n);
  }

  reset(): void {
    this.truncate(0);
  }
}

export class ReferenceModel {
  constructor(
    readonly config: StableLMConfig,
    readonly weights: ModelWeights,
  ) {}

  newSequence(): Sequence {
    return new Sequence(this.config.numLayers);
  }

  /**
   * Feeds `tokens` at positions startPos.. (the cache is rewound to startPos
   * first) and returns the logits of the last position, or of every position.
   */
  forward(seq: Sequence, tokens: number[], startPos = seq.length(), opts: { allLogits?: boolean } = {}): Float32Array[] {
    const { hiddenSize: H, numLayers } = this.config;
    const n = tokens.length;
    const hidden = new Float64Array(n * H); // [n × H]
    tokens.forEach((t, i) => hidden.set(this.embed(t), i * H));
    this.forwardLayers(seq, startPos, hidden, 0, numLayers);
    const wanted = opts.allLogits ? [...tokens.keys()] : [n - 1];
    return this.logitsOf(wanted.map((i) => hidden.subarray(i * H, (i + 1) * H)));
  }

  /** token id → its embedding row [H]. */
  embed(token: number): Float64Array {
    const { vocabSize, hiddenSize } = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= vocabSize) throw new RangeError(`token id ${token} is outside the vocabulary (0..${vocabSize - 1})`);
    return Float64Array.from(matrixRow(this.weights.embed, token, new Float32Array(hiddenSize)));
  }

  /** Final LayerNorm and the LM head: hidden [H] → logits [vocabSize]. */
  logits(h: Float64Array): Float32Array {
    return this.logitsOf([h])[0];
  }

  /** logits() of several positions in one pass over the head, so each of its rows is dequantized once. */
  private logitsOf(hs: Float64Array[]): Float32Array[] {
    const xs = hs.map((h) => layerNorm(h, this.weights.outputNorm, this.config.layerNormEps));
    return matvecs(this.weights.output, xs).map((l) => Float32Array.from(l));
  }

  /**
   * Runs layers [firstLayer, endLayer) over n positions in place: hidden is
   * [n × H], position i is startPos + i. The KV cache of those layers is
   * rewound to startPos, then extended by n.
   */
  forwardLayers(seq: Sequence, startPos: number, hidden: Float64Array, firstLayer: number, endLayer: number): void {
    const cfg = this.config;
    const { hiddenSize: H, numHeads, numKVHeads, headDim, layerNormEps: eps } = cfg;
    if (hidden.length % H !== 0) throw new Error(`hidden has ${hidden.length} values, not a multiple of ${H}`);
    const n = hidden.length / H;
    if (firstLayer < 0 || endLayer > cfg.numLayers || firstLayer >= endLayer) throw new Error(`bad layer range [${firstLayer}, ${endLayer})`);
    if (startPos + n > cfg.contextLength) throw new Error(`positions up to ${startPos + n} exceed the context length ${cfg.contextLength}`);

    for (let l = firstLayer; l < endLayer; l++) {
      const w = this.weights.layers[l];
      if (!w) throw new Error(`layer ${l} is not loaded`);
      const keys = seq.keys[l];
      const values = seq.values[l];
      if (startPos > keys.length) throw new Error(`layer ${l} caches ${keys.length} positions; cannot start at ${startPos}`);
      keys.length = startPos;
      values.length = startPos;

      for (let i = 0; i < n; i++) {
        const pos = startPos + i;
        const h = hidden.subarray(i * H, (i + 1) * H); // [H], updated in place

        const a = layerNorm(h, w.attnNorm, eps); // [H]
        const q = matvec(w.q, a, w.qBias); // [numHeads·headDim]
        const k = matvec(w.k, a, w.kBias); // [numKVHeads·headDim]
        const v = matvec(w.v, a, w.vBias); // [numKVHeads·headDim]
        if (w.qNorm && w.kNorm) {
          headNorm(q, numHeads, headDim, w.qNorm, eps);
          headNorm(k, numKVHeads, headDim, w.kNorm, eps);
        }
        rotary(q, numHeads, headDim, cfg.rotaryDim, pos, cfg.ropeTheta);
        rotary(k, numKVHeads, headDim, cfg.rotaryDim, pos, cfg.ropeTheta);
        keys.push(k);
        values.push(v);

        const attnOut = attention(q, keys, values, numHeads, numKVHeads, headDim); // [H]
        const attn = matvec(w.o, attnOut); // [H]

        if (w.ffnNorm) {
          // Sequential (1.6B): the MLP reads the normalised sum.
          for (let j = 0; j < H; j++) h[j] += attn[j];
          const m = layerNorm(h, w.ffnNorm, eps);
          const mlp = feedForward(w.gate, w.up, w.down, m);
          for (let j = 0; j < H; j++) h[j] += mlp[j];
        } else {
          // Parallel (12B): attention and MLP both read `a`.
          const mlp = feedForward(w.gate, w.up, w.down, a);
          for (let j = 0; j < H; j++) h[j] += attn[j] + mlp[j];
        }
      }
    }
  }
}

/** (x − mean) / sqrt(var + eps) · w + b, population variance. */
function layerNorm(x: Float64Array, norm: Norm, eps: number): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (x[i] - mean) ** 2;
  variance /= n;
  const inv = 1 / Math.sqrt(variance + eps);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * inv * norm.weight[i] + norm.bias[i];
  return out;
}

/** Each head's vector normalised on its own, times that head's weight, no bias (12B qk-norm). */
function headNorm(x: Float64Array, heads: number, headDim: number, weight: Float32Array, eps: number): void {
  for (let h = 0; h < heads; h++) {
    const o = h * headDim;
    const normed = layerNorm(x.subarray(o, o + headDim), { weight: weight.subarray(o, o + headDim), bias: new Float32Array(headDim) }, eps);
    x.set(normed, o);
  }
}

/** W·x (+ b), W row-major [rows × cols], x [cols] → [rows]. */
function matvec(m: Matrix, x: Float64Array, bias?: Float32Array): Float64Array {
  return matvecs(m, [x], bias)[0];
}

/** matvec for each x, reading (dequantizing) each row of W once. */
function matvecs(m: Matrix, xs: Float64Array[], bias?: Float32Array): Float64Array[] {
  const outs = xs.map(() => new Float64Array(m.rows));
  const { rows, cols } = m;
  // F32 weights are read in place; other types are dequantized a row at a time.
  const direct = m.type === TensorType.F32 && m.bytes.byteOffset % 4 === 0 ? new Float32Array(m.bytes.buffer, m.bytes.byteOffset, rows * cols) : undefined;
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const w = direct ?? matrixRow(m, r, row);
    const base = direct ? r * cols : 0;
    for (let k = 0; k < xs.length; k++) {
      const x = xs[k];
      let s = 0;
      for (let c = 0; c < cols; c++) s += w[base + c] * x[c];
      outs[k][r] = bias ? s + bias[r] : s;
    }
  }
  return outs;
}

/**
 * Partial NeoX rotary: in each head only the first rotaryDim dims turn, in
 * pairs (j, j + rotaryDim/2). Angles are formed in float32 as HF does, so
 * long positions round the same way.
 */
function rotary(x: Float64Array, heads: number, headDim: number, rotaryDim: number, pos: number, theta: number): void {
  const half = rotaryDim / 2;
  for (let j = 0; j < half; j++) {
    const invFreq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / rotaryDim))));
    const angle = Math.fround(pos * invFreq);
    const cos = Math.fround(Math.cos(angle));
    const sin = Math.fround(Math.sin(angle));
    for (let h = 0; h < heads; h++) {
      const o = h * headDim;
      const x1 = x[o + j];
      const x2 = x[o + j + half];
      x[o + j] = x1 * cos - x2 * sin;
      x[o + j + half] = x2 * cos + x1 * sin;
    }
  }
}

/** Causal softmax attention of one query over all cached positions; head h reads kv head ⌊h·kvHeads/heads⌋. */
function attention(q: Float64Array, keys: Float64Array[], values: Float64Array[], heads: number, kvHeads: number, headDim: number): Float64Array {
  const out = new Float64Array(heads * headDim);
  const scale = 1 / Math.sqrt(headDim);
  const group = heads / kvHeads;
  const scores = new Float64Array(keys.length);
  for (let h = 0; h < heads; h++) {
    const qo = h * headDim;
    const ko = Math.floor(h / group) * headDim;
    let max = -Infinity;
    for (let t = 0; t < keys.length; t++) {
      let s = 0;
      for (let d = 0; d < headDim; d++) s += q[qo + d] * keys[t][ko + d];
      scores[t] = s * scale;
      max = Math.max(max, scores[t]);
    }
    let sum = 0;
    for (let t = 0; t < keys.length; t++) {
      scores[t] = Math.exp(scores[t] - max);
      sum += scores[t];
    }
    for (let t = 0; t < keys.length; t++) {
      const p = scores[t] / sum;
      for (let d = 0; d < headDim; d++) out[qo + d] += p * values[t][ko + d];
    }
  }
  return out;
}

/** down(silu(gate·x) ⊙ up·x). */
function feedForward(gate: Matrix, up: Matrix, down: Matrix, x: Float64Array): Float64Array {
  const g = matvec(gate, x);
  const u = matvec(up, x);
  for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return matvec(down, g);
}
