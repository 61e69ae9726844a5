/**
 * StreamBatches' producer: @ch8/batching's `plannedBatches` (the epoch iteration `epochBatches` and the trainer use
 * too, so a stream carries exactly the batches an in-process run would build) plans each epoch up front (positions
 * only, cheap) and collates a batch only when the stream asks for it; it is Arrow-encoded then, so the service never
 * runs ahead of the consumer by more than the kit's bounded buffer (CH8_MAX_BUFFERED_BATCHES).
 */
import { Bucketing as WireBucketing, type StreamBatchesRequest } from '@ch8/contracts/dataset';
import { encodeBatch } from '@ch8/batching/arrow';
import { plannedBatches, type Bucketing } from '@ch8/batching/plan';
import { InvalidInputError } from '@ch8/errors';
import type { PreparedSplit } from './prepare.ts';

/** One StreamBatchesResponse (as the kit's init shape). */
export interface BatchMessage {
  arrowIpc: Uint8Array;
  epoch: number;
  batchIndex: number;
  batchesInEpoch: number;
  batchSize: number;
  maxLength: number;
}

export interface StreamHooks {
  /** Called after each batch is built, with the count built so far in this stream. */
  onBatch?: (built: number) => void;
  /** Called once when the producer stops: `completed` false when it was cancelled or left early. */
  onEnd?: (info: { built: number; completed: boolean }) => void;
}

export interface StreamPlan {
  batchSize: number;
  seed: number;
  shuffle: boolean;
  bucketing: Bucketing;
  firstEpoch: number;
  epochs: number;
}

/** The library's bucketing of the request's enum: unspecified = none. */
const BUCKETING: Record<number, Bucketing | undefined> = {
  [WireBucketing.UNSPECIFIED]: 'none',
  [WireBucketing.NONE]: 'none',
  [WireBucketing.CHUNK]: 'chunk',
  [WireBucketing.GLOBAL]: 'global',
};

/**
 * Validates the request's numbers. batch_size 0 -> InvalidInputError (field batch_size); seed beyond 2^53 -> field
 * seed; an unknown bucketing value -> field bucketing.
 */
export function streamPlan(req: StreamBatchesRequest): StreamPlan {
  if (req.batchSize <= 0)
    throw new InvalidInputError(`batch_size must be > 0, got ${req.batchSize}`, { field: 'batch_size' });
  if (req.seed > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidInputError(`seed must be at most ${Number.MAX_SAFE_INTEGER}, got ${req.seed}`, { field: 'seed' });
  }
  const epochs = req.epochs === 0 ? 1 : req.epochs;
  if (req.epoch + epochs - 1 > 0x7fffffff)
    throw new InvalidInputError('epoch + epochs is too large', { field: 'epochs' });
  const bucketing = BUCKETING[req.bucketing];
  if (bucketing === undefined)
    throw new InvalidInputError(`unknown bucketing ${req.bucketing}`, { field: 'bucketing' });
  return {
    batchSize: req.batchSize,
    seed: Number(req.seed),
    shuffle: req.shuffle,
    bucketing,
    firstEpoch: req.epoch,
    epochs,
  };
}

/** The batches of `plan.epochs` epochs of one split, built lazily; stops as soon as `signal` aborts. */
export async function* produceBatches(
  split: PreparedSplit,
  plan: StreamPlan,
  signal: AbortSignal,
  hooks: StreamHooks = {},
): AsyncGenerator<BatchMessage> {
  let built = 0;
  let completed = false;
  try {
    for (let e = 0; e < plan.epochs; e++) {
      const epoch = plan.firstEpoch + e;
      const options = {
        batchSize: plan.batchSize,
        seed: plan.seed,
        epoch,
        shuffle: plan.shuffle,
        bucketing: plan.bucketing,
      };
      // plannedBatches collates a batch only when asked for the next one: the stream never runs ahead of its reader.
      for (const { batchIndex, batchesInEpoch, batch } of plannedBatches(split.examples, options)) {
        if (signal.aborted) return;
        const message: BatchMessage = {
          arrowIpc: encodeBatch(batch),
          epoch,
          batchIndex,
          batchesInEpoch,
          batchSize: batch.batchSize,
          maxLength: batch.maxLength,
        };
        built++;
        hooks.onBatch?.(built);
        yield message;
      }
    }
    completed = true;
  } finally {
    hooks.onEnd?.({ built, completed });
  }
}
