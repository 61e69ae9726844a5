/**
 * tfjs building blocks whose gradients avoid what wasm does slowly or lacks: matMul gradients use explicit
 * transposes (no transposeA/transposeB slow path), masked pooling is one batched matMul with a cheap gradient, and
 * the loss has a fused gradient.
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
 * Weighted sum over time: w [B, 1, T] @ x [B, T, d] -> [B, 1, d]. `w` is constant; since one of its dimensions is
 * 1, its transpose is a reshape, so the gradient w.r.t. x is a plain batched matMul.
 */
export const weightedSum = tf.customGrad((w: tf.Tensor, x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([w]);
  return {
    value: tf.matMul(w as tf.Tensor3D, x as tf.Tensor3D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const sw = saved[0]!;
      const [B, , T] = sw.shape as [number, number, number];
      return [tf.zeros(sw.shape), tf.matMul(tf.reshape(sw, [B, T, 1]) as tf.Tensor3D, dy as tf.Tensor3D)];
    },
  };
}) as (w: tf.Tensor3D, x: tf.Tensor) => tf.Tensor;

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
