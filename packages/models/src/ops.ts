/**
 * tfjs building blocks whose gradients avoid what wasm does slowly or lacks: matMul gradients use explicit
 * transposes (no transposeA/transposeB slow path), the embedding gather's gradient is a scatter-add (ScatterNd,
 * registered on wasm) instead of UnsortedSegmentSum, and the loss has a fused gradient.
 */
import * as tf from '@tensorflow/tfjs';

function swapLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return tf.transpose(x, perm);
}

/** a @ b (rank 2 or batched rank 3) with a gradient made of plain matMuls and explicit transposes. */
export const mm = tf.customGrad((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy as tf.Tensor2D, swapLast(sb) as tf.Tensor2D), tf.matMul(swapLast(sa) as tf.Tensor2D, dy as tf.Tensor2D)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** x @ w + b. */
export function dense(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.add(mm(x, w), b);
}

/**
 * Rows of `table` [U, d] picked by `ids` (int32 [N]); gradient: a scatter-add of dy into a [U, d] zero table
 * (duplicates summed).
 */
export const embed = tf.customGrad((table: tf.Tensor, ids: tf.Tensor, save: tf.GradSaveFunc) => {
  save([ids]);
  const shape = table.shape as [number, number];
  return {
    value: tf.gather(table, ids),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const s = saved[0]!;
      return [tf.scatterND(tf.reshape(s, [s.shape[0]!, 1]), dy, shape), tf.zeros(s.shape)];
    },
  };
}) as (table: tf.Tensor, ids: tf.Tensor1D) => tf.Tensor;

/**
 * Weighted sum of table rows: p [B, U] @ table [U, d]. `pT` is p transposed (built by the caller on the host), so
 * the table's gradient pT @ dy is a plain matMul. p and pT are constants (their gradients are never used).
 */
export const pool = tf.customGrad((p: tf.Tensor, pT: tf.Tensor, table: tf.Tensor, save: tf.GradSaveFunc) => {
  save([pT]);
  const pShape = p.shape;
  return {
    value: tf.matMul(p as tf.Tensor2D, table as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const spT = saved[0]!;
      return [tf.zeros(pShape), tf.zeros(spT.shape), tf.matMul(spT as tf.Tensor2D, dy as tf.Tensor2D)];
    },
  };
}) as (p: tf.Tensor2D, pT: tf.Tensor2D, table: tf.Tensor) => tf.Tensor;

/** Mean binary cross-entropy on logits [B] against labels [B] (numerically stable), gradient (sigmoid(z) - y)/B. */
export function bceWithLogits(z: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const f = tf.customGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return {
      value: tf.mean(tf.add(tf.sub(tf.relu(x), tf.mul(x, y)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const sx = saved[0]!;
        return tf.mul(tf.sub(tf.sigmoid(sx), y), tf.div(dy, sx.shape[0]!));
      },
    };
  });
  return f(z);
}

/** Layer normalisation over the last axis. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}
