import cluster from 'node:cluster';
import { createLogger } from '@ch8/service-kit/logger';
import { settingsOrExit } from '@ch8/service-kit/run';
import { parseGatewayConfig } from './config.ts';

const config = settingsOrExit('gateway', () => parseGatewayConfig(process.env));
if (config.workers > 1 && cluster.isPrimary) {
  // Several serving processes on one port: this one only starts, watches and stops them (no models, no tfjs here).
  const { runPrimary } = await import('./cluster.ts');
  const logger = createLogger({ level: config.logLevel, bindings: { service: 'gateway', role: 'primary' } });
  process.exitCode = await runPrimary({ workers: config.workers, metricsAddress: config.metricsAddress, logger });
} else {
  const { serveGateway } = await import('./serve.ts');
  await serveGateway(config);
}
