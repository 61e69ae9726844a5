/** Where the services of a local stack listen: defaults, then CH8_*_ADDR from the environment. */
export const SERVICES = ['embedding', 'dataset', 'trainer', 'gateway'] as const;
export type ServiceName = (typeof SERVICES)[number];

export const DEFAULT_ADDRESSES: Record<ServiceName, string> = {
  embedding: '127.0.0.1:50051',
  dataset: '127.0.0.1:50052',
  trainer: '127.0.0.1:50053',
  gateway: '127.0.0.1:50054',
};

export const SERVICE_TYPE: Record<ServiceName, string> = {
  embedding: 'ch8.embedding.v1.EmbeddingService',
  dataset: 'ch8.dataset.v1.DatasetService',
  trainer: 'ch8.trainer.v1.TrainerService',
  gateway: 'ch8.gateway.v1.GatewayService',
};

export function stackAddresses(env: Record<string, string | undefined>): Record<ServiceName, string> {
  const out = { ...DEFAULT_ADDRESSES };
  for (const s of SERVICES) {
    const v = env[`CH8_${s.toUpperCase()}_ADDR`];
    if (v) out[s] = v;
  }
  return out;
}
