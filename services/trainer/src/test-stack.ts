/**
 * Test fixtures (used only by *.test.ts): a tiny sentiment data set whose right answer is known, the REAL embedding
 * and dataset services on port 0 (the dataset service can be stopped and started again on the same port), and
 * trainers on port 0 with their own temporary state directory and model repository.
 *
 * The data: positive words have vectors with first coordinate +1, negative words -1, neutral words 0 (the other
 * coordinates are seeded noise); a sentence's label is 1 when it has more positive than negative words. The mean of
 * a sentence's vectors therefore separates the labels by its first coordinate: a bag-of-words logistic regression
 * can reach (nearly) 100 % dev accuracy; chance is about 50 %.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { DatasetService, type PrepareDatasetRequestSchema } from '@ch8/contracts/dataset';
import {
  RunState,
  TrainerService,
  type RunConfig,
  type RunConfigSchema,
  type WatchRunResponse,
} from '@ch8/contracts/trainer';
import { parseDatasetConfig } from '@ch8/dataset-service/config';
import { createDatasetServer } from '@ch8/dataset-service/server';
import { parseEmbeddingConfig } from '@ch8/embedding-service/config';
import { createEmbeddingServer } from '@ch8/embedding-service/server';
import { writeVectorFile } from '@ch8/embeddings/write';
import { uniform01 } from '@ch8/random';
import { createClient, type Client } from '@ch8/service-kit/client';
import { silentLogger } from '@ch8/service-kit/logger';
import type { Ch8Server } from '@ch8/service-kit/server';
import { parseTrainerConfig, type TrainerConfig } from './config.ts';
import { createTrainerServer, type TrainerDeps } from './server.ts';

export const DIM = 8;
export const POSITIVE = Array.from({ length: 10 }, (_, i) => `pos${i}`);
export const NEGATIVE = Array.from({ length: 10 }, (_, i) => `neg${i}`);
export const NEUTRAL = Array.from({ length: 20 }, (_, i) => `neu${i}`);
/** Not in the vector file: dropped by the dataset service. */
export const UNKNOWN = ['zz0', 'zz1', 'zz2'];

function vectors(seed: number): Array<[string, Float32Array]> {
  const rnd = uniform01(seed);
  const entry = (word: string, first: number): [string, Float32Array] => {
    const v = new Float32Array(DIM);
    v[0] = first;
    for (let k = 1; k < DIM; k++) v[k] = rnd() * 2 - 1;
    return [word, v];
  };
  return [
    ...POSITIVE.map((w) => entry(w, 1)),
    ...NEGATIVE.map((w) => entry(w, -1)),
    ...NEUTRAL.map((w) => entry(w, 0)),
  ];
}

/** `n` TSV rows `sentence<TAB>label` with label = 1 iff positive words outnumber negative ones (never a tie). */
export function sentimentRows(n: number, seed: number): string[] {
  const rnd = uniform01(seed);
  const pick = (pool: readonly string[]): string => pool[Math.floor(rnd() * pool.length)]!;
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 3 + Math.floor(rnd() * 8);
    const words: string[] = [];
    let balance = 0;
    for (let k = 0; k < len; k++) {
      const r = rnd();
      if (r < 0.35) {
        words.push(pick(POSITIVE));
        balance++;
      } else if (r < 0.7) {
        words.push(pick(NEGATIVE));
        balance--;
      } else if (r < 0.95) {
        words.push(pick(NEUTRAL));
      } else {
        words.push(pick(UNKNOWN));
      }
    }
    if (balance === 0) {
      const positive = rnd() < 0.5;
      words.push(pick(positive ? POSITIVE : NEGATIVE));
      balance += positive ? 1 : -1;
    }
    rows.push(`${words.join(' ')}\t${balance > 0 ? 1 : 0}`);
  }
  return rows;
}

/** The data as a source for the dataset service (RunConfig.data). */
export const SOURCE: MessageInitShape<typeof PrepareDatasetRequestSchema> = {
  source: { kind: { case: 'sst2', value: { dir: 'sst2' } } },
  name: 'known-answer',
};

export interface Deps {
  root: string;
  embeddingAddr: string;
  datasetAddr: string;
  dataset: Client<typeof DatasetService>;
  /** Stops the dataset service (it forgets every prepared data set). */
  stopDataset(): Promise<void>;
  /** Starts a fresh dataset service on the same port. */
  startDataset(): Promise<void>;
  stop(): Promise<void>;
}

export interface DepsOptions {
  trainRows?: number;
  devRows?: number;
}

/** Writes the data under a fresh temp root and starts the embedding and dataset services on port 0. */
export async function startDeps(options: DepsOptions = {}): Promise<Deps> {
  const root = await mkdtemp(join(tmpdir(), 'ch8-trainer-deps-'));
  const vectorFile = join(root, 'vectors.txt');
  await writeVectorFile(vectorFile, 'glove-text', vectors(11), DIM);
  await mkdir(join(root, 'sst2'));
  const tsv = (rows: string[]): string => ['sentence\tlabel', ...rows].join('\n') + '\n';
  await writeFile(join(root, 'sst2', 'train.tsv'), tsv(sentimentRows(options.trainRows ?? 600, 1)));
  await writeFile(join(root, 'sst2', 'dev.tsv'), tsv(sentimentRows(options.devRows ?? 150, 2)));

  const emb = createEmbeddingServer({
    config: parseEmbeddingConfig({ CH8_DATA_ROOTS: root, CH8_CACHE_DIR: join(root, 'cache'), CH8_LOG_LEVEL: 'error' }),
    logger: silentLogger,
    defaultSource: vectorFile,
    cwd: root,
  });
  const embeddingAddr = `127.0.0.1:${await emb.server.listen('127.0.0.1:0')}`;
  emb.server.ready();

  let ds: { server: Ch8Server; close: () => Promise<void> } | undefined;
  let port = 0;
  const startDataset = async (): Promise<void> => {
    ds = createDatasetServer({
      config: parseDatasetConfig({ CH8_EMBEDDING_ADDR: embeddingAddr, CH8_DATA_ROOTS: root, CH8_LOG_LEVEL: 'error' }),
      logger: silentLogger,
    });
    port = await ds.server.listen(`127.0.0.1:${port}`);
    ds.server.ready();
  };
  const stopDataset = async (): Promise<void> => {
    const d = ds;
    ds = undefined;
    await d?.server.shutdown(200);
    await d?.close();
  };
  await startDataset();
  const datasetAddr = `127.0.0.1:${port}`;
  const dataset = createClient(DatasetService, datasetAddr);
  return {
    root,
    embeddingAddr,
    datasetAddr,
    dataset,
    stopDataset,
    startDataset,
    async stop() {
      dataset.close();
      await stopDataset();
      await emb.server.shutdown(200);
      await emb.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Environment of a trainer wired to `deps`, with its own state directory and model repository under `dir`. */
export function trainerEnv(deps: Deps, dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CH8_TRAINER_ADDR: '127.0.0.1:0',
    CH8_EMBEDDING_ADDR: deps.embeddingAddr,
    CH8_DATASET_ADDR: deps.datasetAddr,
    CH8_TRAINER_STATE_DIR: join(dir, 'state'),
    CH8_MODEL_REPOSITORY: join(dir, 'models'),
    CH8_BACKEND: 'cpu',
    CH8_LOG_LEVEL: 'error',
    ...extra,
  };
}

export interface Trainer {
  address: string;
  client: Client<typeof TrainerService>;
  config: TrainerConfig;
  /** Shuts the server down and closes the trainer (run workers are interrupted, records flushed). */
  stop(): Promise<void>;
}

/** A trainer on port 0 (in this process; runs in worker threads). */
export async function startTrainer(
  deps: Deps,
  dir: string,
  extra: { env?: Record<string, string>; deps?: Partial<TrainerDeps> } = {},
): Promise<Trainer> {
  const config = parseTrainerConfig(trainerEnv(deps, dir, extra.env));
  const built = createTrainerServer({ config, logger: silentLogger, ...extra.deps });
  const port = await built.server.listen('127.0.0.1:0');
  built.server.ready();
  const address = `127.0.0.1:${port}`;
  const client = createClient(TrainerService, address);
  return {
    address,
    client,
    config,
    async stop() {
      client.close();
      await Promise.all([built.server.shutdown(500), built.close()]);
    },
  };
}

/** A RunConfig as a plain init object. */
export type RunConfigInit = Exclude<MessageInitShape<typeof RunConfigSchema>, RunConfig>;

/** A quick, known-answer run config (bow-frozen, 3 epochs, cpu). */
export function quickConfig(over: RunConfigInit = {}): RunConfigInit {
  return { model: 'bow-frozen', data: SOURCE, learningRate: 0.05, batchSize: 16, epochs: 3, seed: 7n, ...over };
}

/** Every event of a run until its stream ends. */
export async function watchAll(client: Client<typeof TrainerService>, runId: string): Promise<WatchRunResponse[]> {
  const out: WatchRunResponse[] = [];
  for await (const e of client.watchRun({ runId })) out.push(e);
  return out;
}

/** Resolves with the run once it is in a final state. */
export async function waitForEnd(client: Client<typeof TrainerService>, runId: string) {
  await watchAll(client, runId);
  return (await client.getRun({ runId })).run!;
}

export const FINAL = new Set([RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]);

/** The state events of a history, in order. */
export function states(events: readonly WatchRunResponse[]): RunState[] {
  return events.flatMap((e) => (e.event.case === 'state' ? [e.event.value] : []));
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}
