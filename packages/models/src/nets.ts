/**
 * The zoo's architectures as pure functions: a list of parameter specs (shape + PyTorch-style init) and a forward
 * pass from a prepared batch and the batch's embedding rows to logits [B]. PAD never contributes: pooling, max and
 * attention are masked explicitly and RNN states are carried unchanged over PAD positions.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import type { PreparedBatch } from './batch.ts';
import { Rng } from './rng.ts';
import { dense, embed, layerNorm, mm, pool } from './ops.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  init: (rng: Rng) => Float32Array;
}

export interface ForwardInputs {
  prep: PreparedBatch;
  /** Embedding rows of the batch [U + 1, d]: row 0 is PAD (zeros), row r + 1 is prep.rows[r]. */
  table: tf.Tensor;
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

/** Masked mean of the embeddings as one matMul: P [B, U+1] with P[b, r] = count of r in b / length of b. */
function maskedMeanEmbedding(inputs: ForwardInputs): tf.Tensor {
  const { prep } = inputs;
  const B = prep.batchSize;
  const T = prep.maxLength;
  const U1 = prep.rows.length + 1;
  const p = new Float32Array(B * U1);
  const pT = new Float32Array(U1 * B);
  for (let b = 0; b < B; b++) {
    const w = 1 / prep.lengths[b]!;
    for (let t = 0; t < T; t++) {
      const r = prep.local[b * T + t]!;
      if (r === 0) continue;
      p[b * U1 + r]! += w;
      pT[r * B + b]! += w;
    }
  }
  return pool(tf.tensor2d(p, [B, U1]), tf.tensor2d(pT, [U1, B]), inputs.table);
}

/** Token embeddings [B*T, d] (PAD positions are the zero row). */
function tokenEmbeddings(inputs: ForwardInputs): tf.Tensor {
  return embed(inputs.table, tf.tensor1d(inputs.prep.local, 'int32'));
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
 * Kim CNN as one im2col: windows of the widest width over the embeddings right-padded with zeros, each width a
 * matMul over the first k*d columns, ReLU, max over the valid windows only (t < max(len - k + 1, 1)).
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
      const x = tf.reshape(tokenEmbeddings(inputs), [B, T, d]);
      const xp = maxW > 1 ? tf.pad(x, [[0, 0], [0, maxW - 1], [0, 0]]) : x;
      const shifted: tf.Tensor[] = [];
      for (let j = 0; j < maxW; j++) shifted.push(tf.slice(xp, [0, j, 0], [B, T, d]));
      const windows = tf.reshape(maxW > 1 ? tf.concat(shifted, 2) : x, [B * T, maxW * d]);
      const outs = widths.map((k) => {
        const xk = k === maxW ? windows : tf.slice(windows, [0, 0], [B * T, k * d]);
        return mm(xk, param(inputs, `conv${k}/kernel`));
      });
      const bias = tf.concat(widths.map((k) => param(inputs, `conv${k}/bias`)));
      const h = tf.relu(tf.add(outs.length > 1 ? tf.concat(outs, 1) : outs[0]!, bias));
      const nW = widths.length;
      const valid = new Float32Array(B * T * nW);
      for (let b = 0; b < B; b++) {
        const len = prep.lengths[b]!;
        for (let t = 0; t < T; t++) {
          for (let g = 0; g < nW; g++) valid[(b * T + t) * nW + g] = t < Math.max(len - widths[g]! + 1, 1) ? 1 : 0;
        }
      }
      // ReLU outputs are >= 0 and every example has a valid window, so zeroing the invalid ones keeps the max.
      const masked = tf.mul(tf.reshape(h, [B, T, nW, F]), tf.tensor4d(valid, [B, T, nW, 1]));
      const feats = tf.reshape(tf.max(masked, 1), [B, nW * F]);
      return output(dropout(feats, c.dropout, inputs), inputs);
    },
  };
}

/** Per-time-step keep conditions [B, H] (true where the token is real): states are carried unchanged over PAD. */
function stepMasks(prep: PreparedBatch, H: number): tf.Tensor2D[] {
  const B = prep.batchSize;
  const T = prep.maxLength;
  const out: tf.Tensor2D[] = [];
  for (let t = 0; t < T; t++) {
    const m = new Uint8Array(B * H);
    for (let b = 0; b < B; b++) if (prep.local[b * T + t] !== 0) m.fill(1, b * H, (b + 1) * H);
    out.push(tf.tensor2d(m, [B, H], 'bool'));
  }
  return out;
}

type Cell = (xt: tf.Tensor, h: tf.Tensor, c: tf.Tensor, first: boolean) => [tf.Tensor, tf.Tensor];

/** Runs a cell over time (forward or backward), keeping h (and c) unchanged at PAD positions. */
function scan(
  gates: tf.Tensor[],
  masks: tf.Tensor2D[],
  B: number,
  H: number,
  reverse: boolean,
  cell: Cell,
): tf.Tensor {
  let h: tf.Tensor = tf.zeros([B, H]);
  let c: tf.Tensor = h;
  const T = gates.length;
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    const [h2, c2] = cell(gates[t]!, h, c, s === 0);
    const keep = masks[t]!;
    h = tf.where(keep, h2, h);
    c = tf.where(keep, c2, c);
  }
  return h;
}

/** Input projections for every step at once: [B*T, d] @ [d, G] + b, split per time step into [B, G]. */
function inputGates(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, B: number, T: number): tf.Tensor[] {
  const g = dense(x, w, b);
  return tf.unstack(tf.reshape(g, [B, T, g.shape[1]!]), 1);
}

/** PyTorch LSTM (gate order stored here as i, f, o, g; both biases folded into one), init U(-1/sqrt(H), 1/sqrt(H)). */
function lstmDirection(prefix: string, d: number, H: number): ParamSpec[] {
  const bound = 1 / Math.sqrt(H);
  return [
    uniformParam(`${prefix}/input_kernel`, [d, 4 * H], bound),
    uniformParam(`${prefix}/recurrent_kernel`, [H, 4 * H], bound),
    { name: `${prefix}/bias`, shape: [4 * H], init: (rng) => {
      const a = rng.uniform(new Float32Array(4 * H), bound);
      const b = rng.uniform(new Float32Array(4 * H), bound);
      for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
      return a;
    } },
  ];
}

function lstmCell(wh: tf.Tensor, B: number, H: number): Cell {
  return (xt, h, c, first) => {
    const z = first ? xt : tf.add(xt, mm(h, wh));
    const s = tf.sigmoid(tf.slice(z, [0, 0], [B, 3 * H]));
    const g = tf.tanh(tf.slice(z, [0, 3 * H], [B, H]));
    const [i, f, o] = tf.split(s, 3, 1) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const c2 = first ? tf.mul(i, g) : tf.add(tf.mul(f, c), tf.mul(i, g));
    return [tf.mul(o, tf.tanh(c2)), c2];
  };
}

/** PyTorch GRU: r, z, n gates; n = tanh(x W_in + b_in + r * (h W_hn + b_hn)); h' = (1 - z) n + z h. */
function gruDirection(prefix: string, d: number, H: number): ParamSpec[] {
  const bound = 1 / Math.sqrt(H);
  return [
    uniformParam(`${prefix}/input_kernel`, [d, 3 * H], bound),
    uniformParam(`${prefix}/input_bias`, [3 * H], bound),
    uniformParam(`${prefix}/recurrent_kernel`, [H, 3 * H], bound),
    uniformParam(`${prefix}/recurrent_bias`, [3 * H], bound),
  ];
}

function gruCell(wh: tf.Tensor, bh: tf.Tensor, B: number, H: number): Cell {
  return (xt, h, c) => {
    const gh = tf.add(mm(h, wh), bh);
    const rz = tf.sigmoid(tf.add(tf.slice(xt, [0, 0], [B, 2 * H]), tf.slice(gh, [0, 0], [B, 2 * H])));
    const [r, z] = tf.split(rz, 2, 1) as [tf.Tensor, tf.Tensor];
    const n = tf.tanh(tf.add(tf.slice(xt, [0, 2 * H], [B, H]), tf.mul(r, tf.slice(gh, [0, 2 * H], [B, H]))));
    return [tf.add(n, tf.mul(z, tf.sub(h, n))), c];
  };
}

function rnn(c: ModelConfig, type: 'lstm' | 'gru'): Net {
  const H = c.hidden;
  const d = c.dim;
  const dirs = c.bidirectional ? ['fwd', 'bwd'] : ['fwd'];
  const params: ParamSpec[] = [];
  for (const dir of dirs) params.push(...(type === 'lstm' ? lstmDirection(dir, d, H) : gruDirection(dir, d, H)));
  params.push(...linear('out', dirs.length * H, 1));
  return {
    params,
    forward(inputs) {
      const { prep } = inputs;
      const B = prep.batchSize;
      const T = prep.maxLength;
      const x = tokenEmbeddings(inputs);
      const masks = stepMasks(prep, H);
      const finals = dirs.map((dir) => {
        const wh = param(inputs, `${dir}/recurrent_kernel`);
        if (type === 'lstm') {
          const gates = inputGates(x, param(inputs, `${dir}/input_kernel`), param(inputs, `${dir}/bias`), B, T);
          return scan(gates, masks, B, H, dir === 'bwd', lstmCell(wh, B, H));
        }
        const gates = inputGates(x, param(inputs, `${dir}/input_kernel`), param(inputs, `${dir}/input_bias`), B, T);
        return scan(gates, masks, B, H, dir === 'bwd', gruCell(wh, param(inputs, `${dir}/recurrent_bias`), B, H));
      });
      const feats = finals.length > 1 ? tf.concat(finals, 1) : finals[0]!;
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
        tf.reshape(tf.mul(mm(qh, kT), 1 / Math.sqrt(dh)), [B, nh, T, T]),
        tf.tensor4d(keyBias, [B, 1, 1, T]),
      );
      const weights = tf.reshape(tf.softmax(scores), [B * nh, T, T]);
      const ctx = tf.reshape(tf.transpose(tf.reshape(mm(weights, vh), [B, nh, T, dh]), [0, 2, 1, 3]), [N, d]);
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
      const w = new Float32Array(N);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) w[b * T + t] = mask[b * T + t]! / prep.lengths[b]!;
      }
      const pooled = tf.sum(tf.mul(tf.reshape(x2, [B, T, d]), tf.tensor3d(w, [B, T, 1])), 1);
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
