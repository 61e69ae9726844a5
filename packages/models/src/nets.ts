/**
 * The zoo's architectures as pure functions: a list of parameter specs (shape + PyTorch-style init) and a forward
 * pass from a prepared batch and the batch's embedding rows to logits [B]. PAD never contributes: pooling, max and
 * attention are masked explicitly and RNN states are carried unchanged over PAD positions.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import type { PreparedBatch } from './batch.ts';
import type { Rng } from './rng.ts';
import { convMaxPool, fusedConvAvailable } from '@ch8/backend/conv';
import { fusedRnnAvailable, gruSequence, lstmSequence } from '@ch8/backend/rnn';
import { dense, layerNorm, matmul, stockOps, weightedSum } from './ops.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  init: (rng: Rng) => Float32Array;
}

export interface ForwardInputs {
  prep: PreparedBatch;
  /** Token embeddings [B*T, d], row-major by example then position; PAD positions are zero rows. */
  tokens: tf.Tensor;
  params: ReadonlyMap<string, tf.Tensor>;
  /** Dropout on (with masks from `rng`) or off. */
  training: boolean;
  rng: Rng;
}

export interface Net {
  params: ParamSpec[];
  forward(inputs: ForwardInputs): tf.Tensor;
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

function uniformParam(name: string, shape: number[], bound: number): ParamSpec {
  return { name, shape, init: (rng) => rng.uniform(new Float32Array(size(shape)), bound) };
}

function constParam(name: string, shape: number[], value: number): ParamSpec {
  return { name, shape, init: () => new Float32Array(size(shape)).fill(value) };
}

/** PyTorch nn.Linear default init: weight and bias U(-1/sqrt(fanIn), 1/sqrt(fanIn)). Kernel stored [in, out]. */
function linear(prefix: string, fanIn: number, out: number): ParamSpec[] {
  const bound = 1 / Math.sqrt(fanIn);
  return [uniformParam(`${prefix}/kernel`, [fanIn, out], bound), uniformParam(`${prefix}/bias`, [out], bound)];
}

function param(inputs: ForwardInputs, name: string): tf.Tensor {
  const p = inputs.params.get(name);
  if (p === undefined) throw new Error(`internal: parameter ${name} missing`);
  return p;
}

function dropout(x: tf.Tensor, rate: number, inputs: ForwardInputs): tf.Tensor {
  if (!inputs.training || rate === 0) return x;
  return tf.mul(x, tf.tensor(inputs.rng.dropoutMask(size(x.shape), rate), x.shape));
}

function output(x: tf.Tensor, inputs: ForwardInputs, prefix = 'out'): tf.Tensor {
  const B = inputs.prep.batchSize;
  return tf.reshape(dense(x, param(inputs, `${prefix}/kernel`), param(inputs, `${prefix}/bias`)), [B]);
}

/** Masked mean of the token embeddings as one batched matMul with weights 1/length on real tokens, 0 on PAD. */
function maskedMean(x: tf.Tensor, inputs: ForwardInputs): tf.Tensor {
  const { prep } = inputs;
  const B = prep.batchSize;
  const T = prep.maxLength;
  const w = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const v = 1 / prep.lengths[b]!;
    for (let t = 0; t < T; t++) if (prep.local[b * T + t] !== 0) w[b * T + t] = v;
  }
  const d = x.shape[x.shape.length - 1]!;
  return tf.reshape(weightedSum(tf.tensor3d(w, [B, 1, T]), tf.reshape(x, [B, T, d])), [B, d]);
}

function maskedMeanEmbedding(inputs: ForwardInputs): tf.Tensor {
  return maskedMean(inputs.tokens, inputs);
}

/** Token embeddings [B*T, d] (PAD positions are the zero row). */
function tokenEmbeddings(inputs: ForwardInputs): tf.Tensor {
  return inputs.tokens;
}

/** 1 for real tokens, 0 for PAD, as [B, T] floats. */
function tokenMask(prep: PreparedBatch): Float32Array {
  const m = new Float32Array(prep.local.length);
  for (let i = 0; i < m.length; i++) m[i] = prep.local[i] === 0 ? 0 : 1;
  return m;
}

function bow(): Net {
  return {
    params: [],
    forward: (inputs) => output(maskedMeanEmbedding(inputs), inputs),
  };
}

function mlp(c: ModelConfig): Net {
  return {
    params: [...linear('hidden', c.dim, c.hidden)],
    forward(inputs) {
      const x = maskedMeanEmbedding(inputs);
      const h = tf.relu(dense(x, param(inputs, 'hidden/kernel'), param(inputs, 'hidden/bias')));
      return output(dropout(h, c.dropout, inputs), inputs);
    },
  };
}

/**
 * Kim CNN: per width k a conv1d (valid) over the embeddings, right-padded with zeros to at least the widest width,
 * so only the T - k + 1 windows that can be valid are computed (about 30% fewer multiply-adds than every position
 * of every width on bucketed SST-2 batches); bias, ReLU, then the max over the valid windows only
 * (t < max(len - k + 1, 1)). The convolution's gradients are im2col / col2im matrix products in @ch8/backend.
 */
function cnn(c: ModelConfig): Net {
  const widths = c.widths;
  const maxW = Math.max(...widths);
  const F = c.filters;
  const d = c.dim;
  const params: ParamSpec[] = [];
  for (const k of widths) params.push(...linear(`conv${k}`, k * d, F));
  return {
    params,
    forward(inputs) {
      const { prep } = inputs;
      const B = prep.batchSize;
      const T = prep.maxLength;
      // [B, 1, Tp, d]: conv1d as a conv2d of height 1 (what tf.conv1d does, without its reshapes' bookkeeping).
      const Tp = Math.max(T, maxW);
      const x4 = tf.reshape(tokenEmbeddings(inputs), [B, 1, T, d]) as tf.Tensor4D;
      const x =
        Tp > T
          ? (tf.pad(x4, [
              [0, 0],
              [0, 0],
              [0, Tp - T],
              [0, 0],
            ]) as tf.Tensor4D)
          : x4;
      if (!stockOps() && fusedConvAvailable()) {
        // One op per width: XNNPACK's convolution, then bias, ReLU and the max in one pass; the gradient goes
        // through the window of each maximum only (@ch8/backend/conv).
        const x3 = tf.reshape(x, [B, Tp, d]);
        const fused = widths.map((k) => {
          const valid = Array.from(prep.lengths, (len) => Math.max(len - k + 1, 1));
          return convMaxPool(x3, param(inputs, `conv${k}/kernel`), param(inputs, `conv${k}/bias`), k, valid, {
            inputGrad: c.finetune,
          });
        });
        const pooled = fused.length > 1 ? tf.concat(fused, 1) : fused[0]!;
        return output(dropout(pooled, c.dropout, inputs), inputs);
      }
      const feats = widths.map((k) => {
        const Tk = Tp - k + 1;
        const w = tf.reshape(param(inputs, `conv${k}/kernel`), [1, k, d, F]) as tf.Tensor4D;
        const h = tf.relu(tf.add(tf.conv2d(x, w, 1, 'valid'), param(inputs, `conv${k}/bias`)));
        // ReLU outputs are >= 0 and every example has a valid window, so zeroing the invalid ones keeps the max.
        let all = true;
        const valid = new Float32Array(B * Tk);
        for (let b = 0; b < B; b++) {
          const n = Math.max(prep.lengths[b]! - k + 1, 1);
          valid.fill(1, b * Tk, b * Tk + n);
          if (n < Tk) all = false;
        }
        const masked = all ? h : tf.mul(h, tf.tensor4d(valid, [B, 1, Tk, 1]));
        // Max over time as a max-pool (its gradient kernel is fast on wasm; max's equal-mask gradient is not).
        if (stockOps()) return tf.reshape(tf.max(masked, 2), [B, F]);
        return tf.reshape(tf.maxPool(masked as tf.Tensor4D, [1, Tk], [1, Tk], 'valid'), [B, F]);
      });
      const pooled = feats.length > 1 ? tf.concat(feats, 1) : feats[0]!;
      return output(dropout(pooled, c.dropout, inputs), inputs);
    },
  };
}

/**
 * Per-step keep masks for the stacked directions [D, B, 1] (1 where the step's token is real, so the state moves;
 * 0 at PAD, so it is carried unchanged), or undefined when every example is real at that step in every direction.
 * Direction 0 reads time s, direction 1 time T - 1 - s: the backward direction starts at each sequence's true end.
 */
function stepMasks(prep: PreparedBatch, D: number): (Float32Array | undefined)[] {
  const B = prep.batchSize;
  const T = prep.maxLength;
  const out: (Float32Array | undefined)[] = [];
  for (let s = 0; s < T; s++) {
    const m = new Float32Array(D * B);
    let all = true;
    for (let dir = 0; dir < D; dir++) {
      const t = dir === 0 ? s : T - 1 - s;
      for (let b = 0; b < B; b++) {
        const real = prep.local[b * T + t] !== 0;
        m[dir * B + b] = real ? 1 : 0;
        if (!real) all = false;
      }
    }
    out.push(all ? undefined : m);
  }
  return out;
}

/** Exact masked update: m * next + (1 - m) * prev (m is 0 or 1). */
function keep(
  next: tf.Tensor,
  prev: tf.Tensor | undefined,
  m: Float32Array | undefined,
  shape: [number, number, number],
): tf.Tensor {
  if (m === undefined) return next;
  const keepNext = tf.mul(next, tf.tensor3d(m, shape));
  if (prev === undefined) return keepNext;
  return tf.add(
    keepNext,
    tf.mul(
      prev,
      tf.tensor3d(
        m.map((v) => 1 - v),
        shape,
      ),
    ),
  );
}

/** tanh as 2 sigmoid(2x) - 1: wasm's tanh is ~4x slower than its sigmoid (plain ops: no customGrad clones). */
function tanh(x: tf.Tensor): tf.Tensor {
  return stockOps() ? tf.tanh(x) : tf.sub(tf.mul(tf.sigmoid(tf.mul(x, 2)), 2), 1);
}

/** tf.unstack along axis 0; a single slice is a reshape (tfjs's Unpack gradient breaks on one output). */
function unstack(x: tf.Tensor): tf.Tensor[] {
  return x.shape[0] === 1 ? [tf.reshape(x, x.shape.slice(1))] : tf.unstack(x);
}

/**
 * Input projections for all steps, one plain 2-D matMul per direction (wasm's batched matMul is several times
 * slower), returned per step s as [D, B, G]: direction 0 at time s, direction 1 at time T - 1 - s.
 */
function inputGates(tokens: tf.Tensor, w: tf.Tensor, b: tf.Tensor, B: number, T: number, D: number): tf.Tensor[] {
  const d = tokens.shape[1]!;
  const G = w.shape[2]!;
  const x = tf.reshape(tf.transpose(tf.reshape(tokens, [B, T, d]), [1, 0, 2]), [T * B, d]);
  const ws = unstack(w);
  const bs = unstack(b);
  const perDir = ws.map((wd, i) => unstack(tf.reshape(dense(x, wd, bs[i]!), [T, B, G])));
  const out: tf.Tensor[] = [];
  for (let s = 0; s < T; s++) out.push(tf.stack(D === 2 ? [perDir[0]![s]!, perDir[1]![T - 1 - s]!] : [perDir[0]![s]!]));
  return out;
}

/** h [D, B, H] times each direction's recurrent kernel, as D plain matMuls: [D, B, G]. */
function recurrent(h: tf.Tensor, whs: tf.Tensor[]): tf.Tensor {
  const hs = unstack(h);
  return tf.stack(hs.map((hd, i) => matmul(hd, whs[i]!)));
}

/** PyTorch LSTM per direction (gate order stored here as i, f, o, g; both biases folded into one). */
function lstmParams(D: number, d: number, H: number): ParamSpec[] {
  const bound = 1 / Math.sqrt(H);
  return [
    uniformParam('lstm/input_kernel', [D, d, 4 * H], bound),
    uniformParam('lstm/recurrent_kernel', [D, H, 4 * H], bound),
    {
      name: 'lstm/bias',
      shape: [D, 1, 4 * H],
      init: (rng) => {
        const a = rng.uniform(new Float32Array(D * 4 * H), bound);
        const b = rng.uniform(new Float32Array(D * 4 * H), bound);
        for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
        return a;
      },
    },
  ];
}

/** PyTorch GRU per direction: r, z, n; n = tanh(x W_in + b_in + r * (h W_hn + b_hn)); h' = (1 - z) n + z h. */
function gruParams(D: number, d: number, H: number): ParamSpec[] {
  const bound = 1 / Math.sqrt(H);
  return [
    uniformParam('gru/input_kernel', [D, d, 3 * H], bound),
    uniformParam('gru/input_bias', [D, 1, 3 * H], bound),
    uniformParam('gru/recurrent_kernel', [D, H, 3 * H], bound),
    uniformParam('gru/recurrent_bias', [D, 1, 3 * H], bound),
  ];
}

/**
 * The whole recurrence as one fused op (@ch8/backend/rnn, on wasm and cpu), input projection included: its gradient
 * gives the tokens', the input kernel's, the biases' and the recurrent kernel's at once. Returns h [D, B, H].
 */
function fusedRecurrence(c: ModelConfig, inputs: ForwardInputs, type: 'lstm' | 'gru'): tf.Tensor {
  const { prep } = inputs;
  const mask = tf.tensor2d(tokenMask(prep), [prep.batchSize, prep.maxLength]);
  const w = param(inputs, `${type}/input_kernel`);
  const wh = param(inputs, `${type}/recurrent_kernel`);
  const options = { tokensGrad: c.finetune };
  return type === 'lstm'
    ? lstmSequence(inputs.tokens, w, param(inputs, 'lstm/bias'), wh, mask, options)
    : gruSequence(
        inputs.tokens,
        w,
        param(inputs, 'gru/input_bias'),
        wh,
        param(inputs, 'gru/recurrent_bias'),
        mask,
        options,
      );
}

/**
 * Both directions run as one stacked recurrence over [D, B, *] states (one batched matMul per step for both).
 * Each direction's final state is its state at the sequence's true last position. Where the fused op runs (wasm,
 * cpu) it does the whole recurrence; elsewhere (webgpu, tfjs-node) and with stock ops on, op by op below.
 */
function rnn(c: ModelConfig, type: 'lstm' | 'gru'): Net {
  const H = c.hidden;
  const d = c.dim;
  const D = c.bidirectional ? 2 : 1;
  const params = [...(type === 'lstm' ? lstmParams(D, d, H) : gruParams(D, d, H)), ...linear('out', D * H, 1)];
  return {
    params,
    forward(inputs) {
      const { prep } = inputs;
      const B = prep.batchSize;
      const T = prep.maxLength;
      if (!stockOps() && fusedRnnAvailable()) {
        const h = fusedRecurrence(c, inputs, type);
        return output(dropout(tf.reshape(tf.transpose(h, [1, 0, 2]), [B, D * H]), c.dropout, inputs), inputs);
      }
      const masks = stepMasks(prep, D);
      const shape1: [number, number, number] = [D, B, 1];
      let unstacked: tf.Tensor[] | undefined;
      const whs = (): tf.Tensor[] => (unstacked ??= unstack(param(inputs, `${type}/recurrent_kernel`)));
      let h: tf.Tensor | undefined;
      let cell: tf.Tensor | undefined;
      if (type === 'lstm') {
        const gates = inputGates(
          inputs.tokens,
          param(inputs, 'lstm/input_kernel'),
          param(inputs, 'lstm/bias'),
          B,
          T,
          D,
        );
        for (let s = 0; s < T; s++) {
          const z = h === undefined ? gates[s]! : tf.add(gates[s]!, recurrent(h, whs()));
          const sg = tf.sigmoid(tf.slice(z, [0, 0, 0], [D, B, 3 * H]));
          const g = tanh(tf.slice(z, [0, 0, 3 * H], [D, B, H]));
          const [i, f, o] = tf.split(sg, 3, 2) as [tf.Tensor, tf.Tensor, tf.Tensor];
          const c2 = cell === undefined ? tf.mul(i, g) : tf.add(tf.mul(f, cell), tf.mul(i, g));
          const h2 = tf.mul(o, tanh(c2));
          cell = keep(c2, cell, masks[s], shape1);
          h = keep(h2, h, masks[s], shape1);
        }
      } else {
        const gates = inputGates(
          inputs.tokens,
          param(inputs, 'gru/input_kernel'),
          param(inputs, 'gru/input_bias'),
          B,
          T,
          D,
        );
        const bh = param(inputs, 'gru/recurrent_bias');
        for (let s = 0; s < T; s++) {
          const xt = gates[s]!;
          const gh = h === undefined ? bh : tf.add(recurrent(h, whs()), bh);
          const rz = tf.sigmoid(
            tf.add(tf.slice(xt, [0, 0, 0], [D, B, 2 * H]), tf.slice(gh, [0, 0, 0], [-1, -1, 2 * H])),
          );
          const [r, zg] = tf.split(rz, 2, 2) as [tf.Tensor, tf.Tensor];
          const n = tanh(
            tf.add(tf.slice(xt, [0, 0, 2 * H], [D, B, H]), tf.mul(r, tf.slice(gh, [0, 0, 2 * H], [-1, -1, H]))),
          );
          const h2 = h === undefined ? tf.sub(n, tf.mul(zg, n)) : tf.add(n, tf.mul(zg, tf.sub(h, n)));
          h = keep(h2, h, masks[s], shape1);
        }
      }
      const feats = tf.reshape(tf.transpose(h!, [1, 0, 2]), [B, D * H]);
      return output(dropout(feats, c.dropout, inputs), inputs);
    },
  };
}

/** Sinusoidal positions [T, d] (no parameters, any length). */
function positions(T: number, d: number): Float32Array {
  const pe = new Float32Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < d; i++) {
      const angle = t / Math.pow(10000, (2 * Math.floor(i / 2)) / d);
      pe[t * d + i] = i % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return pe;
}

/**
 * One post-norm transformer encoder layer (PyTorch nn.TransformerEncoderLayer with ReLU, feed-forward `hidden`)
 * over embeddings + sinusoidal positions, padding keys masked out, then the masked mean over real tokens.
 */
function attention(c: ModelConfig): Net {
  const d = c.dim;
  const nh = c.heads;
  const dh = d / nh;
  const F = c.hidden;
  const xavier = Math.sqrt(6 / (d + 3 * d));
  const params: ParamSpec[] = [
    uniformParam('attn/qkv_kernel', [d, 3 * d], xavier),
    constParam('attn/qkv_bias', [3 * d], 0),
    uniformParam('attn/out_kernel', [d, d], 1 / Math.sqrt(d)),
    constParam('attn/out_bias', [d], 0),
    constParam('norm1/gamma', [d], 1),
    constParam('norm1/beta', [d], 0),
    ...linear('ff1', d, F),
    ...linear('ff2', F, d),
    constParam('norm2/gamma', [d], 1),
    constParam('norm2/beta', [d], 0),
    ...linear('out', d, 1),
  ];
  return {
    params,
    forward(inputs) {
      const { prep } = inputs;
      const B = prep.batchSize;
      const T = prep.maxLength;
      const N = B * T;
      const mask = tokenMask(prep);
      const emb = tf.reshape(tokenEmbeddings(inputs), [B, T, d]);
      const x = tf.reshape(tf.add(emb, tf.tensor2d(positions(T, d), [T, d])), [N, d]);
      const qkv = dense(x, param(inputs, 'attn/qkv_kernel'), param(inputs, 'attn/qkv_bias'));
      const [q, k, v] = tf.split(qkv, 3, 1) as [tf.Tensor, tf.Tensor, tf.Tensor];
      const heads = (t: tf.Tensor, perm: number[], shape: number[]): tf.Tensor =>
        tf.reshape(tf.transpose(tf.reshape(t, [B, T, nh, dh]), perm), shape);
      const qh = heads(q, [0, 2, 1, 3], [B * nh, T, dh]);
      const kT = heads(k, [0, 2, 3, 1], [B * nh, dh, T]);
      const vh = heads(v, [0, 2, 1, 3], [B * nh, T, dh]);
      const keyBias = new Float32Array(N);
      for (let i = 0; i < N; i++) keyBias[i] = mask[i] === 1 ? 0 : -1e9;
      const scores = tf.add(
        tf.reshape(tf.mul(matmul(qh, kT), 1 / Math.sqrt(dh)), [B, nh, T, T]),
        tf.tensor4d(keyBias, [B, 1, 1, T]),
      );
      const weights = tf.reshape(tf.softmax(scores), [B * nh, T, T]);
      const ctx = tf.reshape(tf.transpose(tf.reshape(matmul(weights, vh), [B, nh, T, dh]), [0, 2, 1, 3]), [N, d]);
      const attended = dense(ctx, param(inputs, 'attn/out_kernel'), param(inputs, 'attn/out_bias'));
      const x1 = layerNorm(
        tf.add(x, dropout(attended, c.encoderDropout, inputs)),
        param(inputs, 'norm1/gamma'),
        param(inputs, 'norm1/beta'),
      );
      const ff = dense(
        dropout(tf.relu(dense(x1, param(inputs, 'ff1/kernel'), param(inputs, 'ff1/bias'))), c.encoderDropout, inputs),
        param(inputs, 'ff2/kernel'),
        param(inputs, 'ff2/bias'),
      );
      const x2 = layerNorm(
        tf.add(x1, dropout(ff, c.encoderDropout, inputs)),
        param(inputs, 'norm2/gamma'),
        param(inputs, 'norm2/beta'),
      );
      const pooled = maskedMean(x2, inputs);
      return output(dropout(pooled, c.dropout, inputs), inputs);
    },
  };
}

/** The architecture for a resolved config. */
export function buildNet(c: ModelConfig): Net {
  switch (c.kind) {
    case 'bow-frozen':
    case 'bow-finetune':
      return { params: linear('out', c.dim, 1), forward: bow().forward };
    case 'mlp': {
      const net = mlp(c);
      return { params: [...net.params, ...linear('out', c.hidden, 1)], forward: net.forward };
    }
    case 'cnn': {
      const net = cnn(c);
      return { params: [...net.params, ...linear('out', c.widths.length * c.filters, 1)], forward: net.forward };
    }
    case 'bilstm':
      return rnn(c, 'lstm');
    case 'gru':
      return rnn(c, 'gru');
    case 'attention':
      return attention(c);
  }
}
