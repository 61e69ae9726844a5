/**
 * A training loop over a SentimentModel with progress callbacks and cancellation, for the trainer service and
 * scripts. It yields to the event loop between steps, so a server stays responsive while it trains.
 */
import { CancelledError, InvalidInputError } from '@ch8/errors';
import type { Batch } from './batch.ts';
import type { EvalResult, SentimentModel } from './model.ts';

export interface StepProgress {
  epoch: number;
  /** Step within the epoch (1-based) and over the whole run. */
  step: number;
  globalStep: number;
  loss: number;
  examples: number;
  /** Training examples per second so far in this epoch (evaluation excluded). */
  examplesPerSecond: number;
}

export interface EpochProgress {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  trainExamples: number;
  trainSeconds: number;
  examplesPerSecond: number;
  /** Present when `evalBatches` was given. */
  eval?: EvalResult;
}

export interface FitOptions {
  epochs: number;
  /** The batches of an epoch (e.g. @ch8/batching's epochBatches with { epoch }). */
  batches: (epoch: number) => Iterable<Batch> | AsyncIterable<Batch>;
  /** Evaluated after every epoch (dropout off). */
  evalBatches?: () => Iterable<Batch>;
  onStep?: (p: StepProgress) => void;
  onEpoch?: (p: EpochProgress) => void;
  /** Report onStep every n steps (default 1). */
  stepEvery?: number;
  /** Aborting stops after the current step with a CancelledError. */
  signal?: AbortSignal;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Trains `model` for `epochs`; returns every epoch's progress. */
export async function fit(model: SentimentModel, options: FitOptions): Promise<EpochProgress[]> {
  if (!Number.isInteger(options.epochs) || options.epochs < 1) {
    throw new InvalidInputError(`must be a positive integer, got ${options.epochs}`, { field: 'epochs' });
  }
  const every = Math.max(1, options.stepEvery ?? 1);
  const history: EpochProgress[] = [];
  let globalStep = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    let loss = 0;
    let correct = 0;
    let examples = 0;
    let seconds = 0;
    let step = 0;
    for await (const batch of options.batches(epoch)) {
      if (options.signal?.aborted) throw new CancelledError('training cancelled', {}, { cause: options.signal.reason });
      const t0 = performance.now();
      const r = await model.trainStepAsync(batch);
      seconds += (performance.now() - t0) / 1000;
      loss += r.loss * r.examples;
      correct += r.correct;
      examples += r.examples;
      step++;
      globalStep++;
      if (options.onStep !== undefined && step % every === 0) {
        options.onStep({ epoch, step, globalStep, loss: r.loss, examples: r.examples, examplesPerSecond: examples / seconds });
      }
      if (step % 8 === 0) await yieldToEventLoop();
    }
    if (examples === 0) throw new InvalidInputError(`epoch ${epoch} has no batches`, { field: 'batches' });
    const progress: EpochProgress = {
      epoch,
      trainLoss: loss / examples,
      trainAccuracy: correct / examples,
      trainExamples: examples,
      trainSeconds: seconds,
      examplesPerSecond: examples / seconds,
    };
    // Read asynchronously: works on every backend, webgpu included (dataSync cannot read GPU tensors in Node).
    if (options.evalBatches !== undefined) progress.eval = await model.evaluateAsync(options.evalBatches());
    history.push(progress);
    options.onEpoch?.(progress);
  }
  return history;
}
