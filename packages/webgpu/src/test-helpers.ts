/** Helpers shared by this package's tests (not exported from the package). */
import * as tf from '@tensorflow/tfjs';
import { FailedPreconditionError, isInvalidInput } from '@ch8/errors';

export { isInvalidInput };

export function isFailedPrecondition(e: unknown): e is FailedPreconditionError {
  return e instanceof FailedPreconditionError;
}

/** Largest |a-b| / max(|a|,|b|, floor) over the elements; arrays must have equal length. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} != ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? NaN;
    const y = b[i] ?? NaN;
    if (Number.isNaN(x) !== Number.isNaN(y)) return Infinity;
    if (Number.isNaN(x)) continue;
    worst = Math.max(worst, Math.abs(x - y) / Math.max(Math.abs(x), Math.abs(y), floor));
  }
  return worst;
}

/** Run `f` on a backend and read every output with `await data()` (the only read that works on webgpu). */
export async function runOn(
  backend: string,
  f: () => tf.Tensor | tf.Tensor[],
): Promise<{ shape: number[]; dtype: string; values: number[] }[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(f);
  const list = Array.isArray(outs) ? outs : [outs];
  const result = [];
  for (const t of list) {
    result.push({ shape: t.shape, dtype: t.dtype, values: Array.from(await t.data()) });
    t.dispose();
  }
  return result;
}
