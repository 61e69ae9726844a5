import { parseConfig, type FieldSpec } from '@ch8/service-kit/config';

export const trainerConfigSpec = {
  address: { env: 'CH8_TRAINER_ADDR', kind: 'string', default: '127.0.0.1:50053', doc: 'address to listen on' },
  embeddingAddress: { env: 'CH8_EMBEDDING_ADDR', kind: 'string', default: '127.0.0.1:50051', doc: 'embedding service address' },
  datasetAddress: { env: 'CH8_DATASET_ADDR', kind: 'string', default: '127.0.0.1:50052', doc: 'dataset service address' },
  modelRepository: { env: 'CH8_MODEL_REPOSITORY', kind: 'string', default: 'var/models', doc: 'directory of exported, versioned models' },
  backend: { env: 'CH8_BACKEND', kind: 'enum', values: ['auto', 'tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'] as const, default: 'auto', doc: 'compute backend' },
  logLevel: { env: 'CH8_LOG_LEVEL', kind: 'enum', values: ['debug', 'info', 'warn', 'error'] as const, default: 'info', doc: 'log level' },
} satisfies Record<string, FieldSpec>;

export type TrainerConfig = ReturnType<typeof parseTrainerConfig>;

export function parseTrainerConfig(env: Record<string, string | undefined>) {
  return parseConfig(trainerConfigSpec, env);
}
