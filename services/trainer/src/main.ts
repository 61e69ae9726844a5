import { createLogger } from '@ch8/service-kit/logger';
import { serveMetrics } from '@ch8/service-kit/metrics';
import { runService, settingsOrExit } from '@ch8/service-kit/run';
import { useTransport } from '@ch8/service-kit/transport';
import { parseTrainerConfig } from './config.ts';
import { createTrainerServer } from './server.ts';

const config = settingsOrExit('trainer', () => parseTrainerConfig(process.env));
// TLS, call limits and the health port for the server built below, TLS for the clients it makes.
useTransport(config.transport);
const logger = createLogger({ level: config.logLevel, bindings: { service: 'trainer' } });
await runService({
  logger,
  start: async () => {
    const trainer = createTrainerServer({ config, logger });
    // On SIGTERM/SIGINT the run workers stop after their current step right away, while runService drains the
    // server (watch streams end once the workers stopped) and then calls close() again (the same promise).
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void trainer.close());
    try {
      await trainer.server.listen(config.address);
    } catch (e) {
      // Runs restored from the state directory may have started already: stop them (they stay resumable).
      await trainer.close();
      throw e;
    }
    // Metrics are not worth refusing to serve for: an endpoint that cannot start is logged.
    const metricsServer = await serveMetrics({
      address: config.metricsAddress,
      metrics: trainer.server.metrics,
      logger,
      field: 'CH8_TRAINER_METRICS_ADDR',
    });
    trainer.server.ready();
    logger.info('trainer ready', {
      state_dir: config.stateDir,
      model_repository: config.modelRepository,
      max_concurrent_runs: config.maxConcurrentRuns,
      backend: config.backend,
    });
    return {
      server: trainer.server,
      close: async () => {
        await metricsServer?.close();
        await trainer.close();
      },
    };
  },
});
