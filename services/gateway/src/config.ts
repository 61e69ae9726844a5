import { parseConfig, type FieldSpec } from '@ch8/service-kit/config';

export const gatewayConfigSpec = {
  address: { env: 'CH8_GATEWAY_ADDR', kind: 'string', default: '127.0.0.1:50054', doc: 'address to listen on' },
  modelRepository: { env: 'CH8_MODEL_REPOSITORY', kind: 'string', default: 'var/models', doc: 'directory of exported, versioned models' },
  maxBatch: { env: 'CH8_GATEWAY_MAX_BATCH', kind: 'int', min: 1, max: 4096, default: 256, doc: 'texts per batched model call' },
  maxQueue: { env: 'CH8_GATEWAY_MAX_QUEUE', kind: 'int', min: 1, default: 10000, doc: 'texts waiting before calls are refused with RESOURCE_EXHAUSTED' },
  logLevel: { env: 'CH8_LOG_LEVEL', kind: 'enum', values: ['debug', 'info', 'warn', 'error'] as const, default: 'info', doc: 'log level' },
} satisfies Record<string, FieldSpec>;

export type GatewayConfig = ReturnType<typeof parseGatewayConfig>;

export function parseGatewayConfig(env: Record<string, string | undefined>) {
  return parseConfig(gatewayConfigSpec, env);
}
