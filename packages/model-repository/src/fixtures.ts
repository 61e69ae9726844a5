/** Tiny deterministic fixtures shared by the tests (not exported from the package). */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import type { ModelConfigInput, ModelKind } from '@ch8/models/config';
import { createModel, type SentimentModel } from '@ch8/models/model';
import type { ManifestInput } from './manifest.ts';

export const V = 12;
export const D = 6;
export const TOKENS = ['<pad>', 'good', 'bad', 'movie', 'not', 'great', 'dull', 'fun', 'plot', 'a', 'the', 'film'];

export function tinyConfig(kind: ModelKind, seed = 7): ModelConfigInput {
  return { kind, vocabSize: V, dim: D, hidden: 4, filters: 3, widths: [2, 3], heads: 2, seed };
}

/** What the model reads of a batch (row-major ids B*T, PAD = 0; labels for training). */
export interface TinyBatch {
  inputIds: Int32Array;
  batchSize: number;
  maxLength: number;
  labels?: Float32Array;
}

/** Pads id lists to the longest with 0. */
export function collate(rows: number[][], labels?: number[]): TinyBatch {
  const T = Math.max(...rows.map((r) => r.length));
  const inputIds = new Int32Array(rows.length * T);
  rows.forEach((r, b) => inputIds.set(r, b * T));
  const batch: TinyBatch = { inputIds, batchSize: rows.length, maxLength: T };
  if (labels !== undefined) batch.labels = Float32Array.from(labels);
  return batch;
}

export const ROWS = [[3, 4, 5, 6, 7], [1, 2, 9, 2], [8], [10, 11, 1]];
export const LABELS = [1, 0, 1, 0];

/** A tiny model after two training steps (so no weight is at its initial value). */
export function trainedModel(kind: ModelKind = 'cnn', seed = 7): SentimentModel {
  const model = createModel(tinyConfig(kind, seed));
  const batch = collate(ROWS, LABELS);
  model.trainStep(batch);
  model.trainStep(batch);
  return model;
}

/**
 * A complete ManifestInput for `model`. The dev split's figures are hand-computed from its confusion matrix
 * [[tn 3, fp 1], [fn 2, tp 4]]: accuracy 7/10, precision 4/5, recall 4/6, f1 8/11.
 */
export function manifestInput(model: SentimentModel): ManifestInput {
  return {
    model: model.config,
    vocabulary: { size: V, dim: D, hash: vocabularyHash(TOKENS, D), tokens: [...TOKENS] },
    tokenizer: { training: { kind: 'chapter', version: 1 }, raw: { kind: 'raw', version: 1 } },
    training: { epochs: 2, batchSize: 4, seed: 1, data: { source: 'fixture', train: 'rows' } },
    metrics: {
      epochs: [
        {
          epoch: 1,
          trainLoss: 0.7,
          trainAccuracy: 0.5,
          devLoss: 0.69,
          devAccuracy: 0.6,
          trainExamplesPerSecond: 120,
          seconds: 0.02,
        },
        {
          epoch: 2,
          trainLoss: 0.65,
          trainAccuracy: 0.75,
          devLoss: 0.6,
          devAccuracy: 0.7,
          trainExamplesPerSecond: 130,
          seconds: 0.02,
        },
      ],
      bestEpoch: 2,
      devAccuracy: 0.7,
      splits: {
        dev: {
          examples: 10,
          dropped: 1,
          loss: 0.6,
          accuracy: 7 / 10,
          precision: 4 / 5,
          recall: 4 / 6,
          f1: 8 / 11,
          confusion: [
            [3, 1],
            [2, 4],
          ],
        },
      },
    },
    backend: { backend: 'cpu', device: 'cpu' },
    timings: { totalSeconds: 0.5, trainSeconds: 0.04 },
    runId: 'run-fixture',
  };
}

export async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'ch8-model-repo-'));
}
