/**
 * tfjs building blocks whose gradients avoid what wasm does slowly or lacks: matMul gradients use explicit
 * transposes (no transposeA/transposeB slow path), masked pooling is one batched matMul with a cheap gradient, and
 * the loss has a fused gradient.
 */
import * as tf from '@tensorflow/tfjs';

/** tfjs does not export the type of customGrad's argument. */
export type CustomFn = Parameters<typeof tf.customGrad>[0];

let stock = false;

/**
 * Test hook: with `on`, the ops below use tfjs's stock ops and their stock gradients (plain matMul, sigmoid
 * cross-entropy, tanh, max) so that tests can check the custom gradients against an independent reference.
 */
export function useStockOps(on: boolean): void {
  stock = on;
}

export function stockOps(): boolean {
  return stock;
}

function swapLast(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  const perm = [...Array(r).keys()];
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return tf.transpose(x, perm);
}

/** a @ b (rank 2 or batched rank 3) with a gradient made of plain matMuls and explicit transposes. */
export const mm = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [
        tf.matMul(dy as tf.Tensor2D, swapLast(sb) as tf.Tensor2D),
        tf.matMul(swapLast(sa) as tf.Tensor2D, dy as tf.Tensor2D),
      ];
    },
  };
}) as unknown as CustomFn) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** a @ b; custom gradient unless stock ops are on. */
export function matmul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return stock || !explicitTransposes ? tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D) : mm(a, b);
}

let explicitTransposes = false;

/**
 * Use `mm` (gradients as plain matMuls with explicit transposes) for every matMul. Off by default: @ch8/backend
 * already routes wasm's transposed matMuls through transpose + plain matMul, and customGrad clones (copies) the
 * tensors it saves, which costs more than it saves on small recurrent matMuls.
 */
export function useExplicitTransposes(on: boolean): void {
  explicitTransposes = on;
}

/** x @ w + b. */
export function dense(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.add(matmul(x, w), b);
}

/** Weighted sum over time: w [B, 1, T] @ x [B, T, d] -> [B, 1, d] (w constant: masked-mean weights). */
export function weightedSum(w: tf.Tensor3D, x: tf.Tensor): tf.Tensor {
  return tf.matMul(w, x as tf.Tensor3D);
}

/** Mean binary cross-entropy on logits [B] against labels [B] (numerically stable), gradient (sigmoid(z) - y)/B. */
export function bceWithLogits(z: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (stock) return tf.losses.sigmoidCrossEntropy(y, z);
  const f = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return {
      // softplus(x) - x*y; tfjs's softplus is the stable form on every backend.
      value: tf.mean(tf.sub(tf.softplus(x), tf.mul(x, y))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const sx = saved[0]!;
        return tf.mul(tf.sub(tf.sigmoid(sx), y), tf.div(dy, sx.shape[0]!));
      },
    };
  }) as unknown as CustomFn);
  return f(z);
}

/** Layer normalisation over the last axis. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}
