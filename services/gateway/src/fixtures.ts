/** Test fixtures: tiny deterministic models exported into a scratch repository, and a gateway started on it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { computeSplitMetrics, type ManifestInput } from '@ch8/model-repository/manifest';
import { exportModel } from '@ch8/model-repository/repository';
import type { ModelKind } from '@ch8/models/config';
import { createModel, type SentimentModel } from '@ch8/models/model';
import { silentLogger } from '@ch8/service-kit/logger';
import { startTestServer, type RunningTestServer } from '@ch8/service-kit/testing';
import { parseGatewayConfig } from './config.ts';
import { createGatewayServer, type Gateway } from './server.ts';

/** SST-2-like tokens (what the raw-text tokenizer produces), `<pad>` first. */
export const TOKENS = [
  '<pad>',
  'i',
  'loved',
  'it',
  '!',
  'was',
  "n't",
  'bad',
  'good',
  'movie',
  'not',
  'great',
  'the',
  'a',
  'plot',
  'dull',
  '.',
  'fun',
  ',',
  "'s",
];
export const DIM = 6;

function tinyConfig(kind: ModelKind, seed: number) {
  return {
    kind,
    vocabSize: TOKENS.length,
    dim: DIM,
    hidden: 4,
    filters: 3,
    widths: [2, 3],
    heads: 2,
    seed,
    learningRate: 0.05,
  };
}

/** positive: "loved", "good", "great", "fun"; negative: "bad", "dull", "not". */
function tinyBatch() {
  const rows = [
    [2, 3, 4],
    [7, 9],
    [8, 14],
    [15, 14, 16],
    [11, 17],
    [10, 8],
  ];
  const T = 3;
  const inputIds = new Int32Array(rows.length * T);
  rows.forEach((r, b) => inputIds.set(r, b * T));
  return { inputIds, batchSize: rows.length, maxLength: T, labels: Float32Array.from([1, 0, 1, 0, 1, 0]) };
}

/** A tiny model of `kind` over TOKENS, a few training steps away from its initial weights (seeded). */
export function tinyModel(kind: ModelKind = 'bow-finetune', seed = 3): SentimentModel {
  const model = createModel(tinyConfig(kind, seed));
  for (let i = 0; i < 3; i++) model.trainStep(tinyBatch());
  return model;
}

/** {@link tinyModel} with asynchronous reads only (for the webgpu backend). */
export async function tinyModelAsync(kind: ModelKind = 'bow-finetune', seed = 3): Promise<SentimentModel> {
  const model = createModel(tinyConfig(kind, seed));
  for (let i = 0; i < 3; i++) await model.trainStepAsync(tinyBatch());
  return model;
}

export function manifestFor(model: SentimentModel, tokens: readonly string[] = TOKENS): ManifestInput {
  const confusion: [[number, number], [number, number]] = [
    [2, 1],
    [0, 3],
  ];
  return {
    model: model.config,
    vocabulary: {
      size: tokens.length,
      dim: model.config.dim,
      hash: vocabularyHash(tokens, model.config.dim),
      tokens: [...tokens],
    },
    tokenizer: { training: { kind: 'chapter', version: 1 }, raw: { kind: 'raw', version: 1 } },
    training: { data: 'gateway test fixture' },
    metrics: {
      epochs: [
        {
          epoch: 1,
          trainLoss: 0.6,
          trainAccuracy: 0.8,
          devLoss: 0.6,
          devAccuracy: 5 / 6,
          trainExamplesPerSecond: 100,
          seconds: 0.01,
        },
      ],
      bestEpoch: 1,
      devAccuracy: 5 / 6,
      splits: { dev: computeSplitMetrics(confusion, 0.6) },
    },
    backend: { backend: 'cpu', device: 'cpu' },
    timings: { totalSeconds: 0.1 },
  };
}

/**
 * Exports `model` as the next version of `name` under `root`; returns the version. `spoil` may change the files in
 * the temporary directory before it is renamed into place (a corrupt version that still appears atomically).
 */
export async function exportVersion(
  root: string,
  name: string,
  model: SentimentModel,
  spoil?: (tmpDir: string) => Promise<void>,
): Promise<number> {
  const exported = await exportModel(
    root,
    name,
    { config: model.config, weights: await model.getWeightsAsync() },
    manifestFor(model),
    spoil === undefined ? {} : { hooks: { beforeRename: spoil } },
  );
  return exported.version;
}

export async function scratchRoot(): Promise<{ root: string; remove(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'ch8-gateway-'));
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}

export interface TestGateway {
  gateway: Gateway;
  running: RunningTestServer;
  address: string;
  stop(): Promise<void>;
}

/** A gateway on `root` (settings from `env`, CH8_* names), started on a free port once its first scan is done. */
export async function startGateway(root: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const config = parseGatewayConfig({ CH8_MODEL_REPOSITORY: root, CH8_GATEWAY_POLL_MS: '0', ...env });
  const gateway = createGatewayServer({ config, logger: silentLogger, defaultMetrics: false });
  await gateway.loaded;
  const running = await startTestServer(gateway);
  return { gateway, running, address: running.address, stop: () => running.stop() };
}
