/**
 * The dataset service's own Prometheus metrics, beside the service kit's per-call ones on the same registry
 * (`ch8_dataset_`): data sets prepared and the examples they kept or dropped. Batches streamed are the kit's
 * `ch8_dataset_stream_messages_sent_total{method="StreamBatches"}` (one batch per message).
 */
import type { ServiceMetrics } from '@ch8/service-kit/metrics';
import type { PreparedDataset } from './prepare.ts';

export interface DatasetMetrics {
  /** A successful PrepareDataset: `isNew` false when the same content was registered already. */
  prepared(dataset: PreparedDataset, isNew: boolean): void;
}

export function createDatasetMetrics(service: ServiceMetrics, registered: () => number): DatasetMetrics {
  const prepared = service.counter<'result'>({
    name: 'datasets_prepared_total',
    help: 'Successful PrepareDataset calls, by result: new (registered now) or known (the same content was registered)',
    labelNames: ['result'],
  });
  for (const result of ['new', 'known'] as const) prepared.inc({ result }, 0);
  service.gauge({ name: 'datasets_registered', help: 'Prepared data sets held', collect: (g) => g.set(registered()) });
  const kept = service.counter({
    name: 'examples_prepared_total',
    help: 'Examples kept by the preparations that registered a new data set (all splits)',
  });
  const dropped = service.counter({
    name: 'examples_dropped_total',
    help: 'Examples dropped as empty after out-of-vocabulary tokens were removed, by the same preparations',
  });
  return {
    prepared(dataset, isNew) {
      prepared.inc({ result: isNew ? 'new' : 'known' });
      if (!isNew) return;
      for (const s of dataset.splits) {
        kept.inc(s.stats.kept);
        dropped.inc(s.stats.droppedEmpty);
      }
    },
  };
}
