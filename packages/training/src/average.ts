/**
 * An exponential moving average of a model's weights (Polyak averaging), the weights a run scores and exports when
 * `weightAverage` > 0. Training itself keeps stepping the raw weights; only scoring, the best epoch's copy and the
 * export see the average, which smooths the step-to-step noise of the dev accuracy curve.
 *
 * Reading every weight after every step would cost as much as a small model's step, so the average is folded in
 * every `every` steps with the decay raised to that power: avg = d^every * avg + (1 - d^every) * weights. The first
 * fold starts the average at the weights themselves. Everything is plain float32 arithmetic in a fixed order, so a
 * run resumed from a checkpoint (which stores the average) continues it bit-identically.
 */
import { InvalidInputError } from '@ch8/errors';
import type { NamedWeight, SentimentModel } from '@ch8/models/model';

/** Steps between two folds of the weights into the average. */
export const AVERAGE_EVERY = 8;

export class WeightAverage {
  private readonly factor: number;
  private current: NamedWeight[] | null;

  /**
   * @param decay per-step decay in (0, 1)
   * @param restored the average a checkpoint stored (null: none yet)
   */
  constructor(
    readonly decay: number,
    restored: NamedWeight[] | null = null,
    readonly every: number = AVERAGE_EVERY,
  ) {
    if (!(decay > 0 && decay < 1)) throw new InvalidInputError(`must be in (0, 1), got ${decay}`, { field: 'decay' });
    if (!Number.isInteger(every) || every < 1)
      throw new InvalidInputError(`must be a positive integer, got ${every}`, { field: 'every' });
    this.factor = Math.fround(decay ** every);
    this.current = restored;
  }

  /** Whether the step with this 1-based global index folds the weights in. */
  due(step: number): boolean {
    return step % this.every === 0;
  }

  /** Folds the model's current weights into the average. */
  async fold(model: SentimentModel): Promise<void> {
    const weights = await model.getWeightsAsync();
    const avg = this.current;
    if (avg === null) {
      this.current = weights;
      return;
    }
    if (avg.length !== weights.length) throw new Error('weight average: the model has other weights than before');
    const k = this.factor;
    const rest = Math.fround(1 - k);
    for (let w = 0; w < avg.length; w++) {
      const a = avg[w]!.values;
      const x = weights[w]!.values;
      if (a.length !== x.length || avg[w]!.name !== weights[w]!.name)
        throw new Error(`weight average: weight ${weights[w]!.name} changed shape`);
      for (let i = 0; i < a.length; i++) a[i] = k * a[i]! + rest * x[i]!;
    }
  }

  /** The average so far (null before the first fold). Live arrays: copy before keeping them. */
  get weights(): NamedWeight[] | null {
    return this.current;
  }

  /** A copy of the average (for a best epoch or a checkpoint). */
  snapshot(): NamedWeight[] | null {
    return this.current?.map((w) => ({ name: w.name, shape: [...w.shape], values: w.values.slice() })) ?? null;
  }

  /**
   * Runs `score` with the average in the model's place, then puts the raw weights back exactly as they were. Without
   * an average yet (fewer than `every` steps), scores the raw weights.
   */
  async withAverage<T>(model: SentimentModel, score: () => Promise<T>): Promise<T> {
    if (this.current === null) return score();
    const raw = await model.getWeightsAsync();
    model.setWeights(this.current);
    try {
      return await score();
    } finally {
      model.setWeights(raw);
    }
  }
}
