/**
 * Several serving processes on one port (`CH8_GATEWAY_WORKERS` > 1), with node:cluster: the primary process forks
 * the workers, each of which is a whole gateway (its own gRPC server, models, batcher and limits); the primary holds
 * the listening socket and hands each new connection to the next worker in turn, so the calls of one connection stay
 * on one worker and a client spreads over the workers by opening several connections. What must be one for the whole
 * gateway is kept one here:
 *
 * - **Start**: each worker scans the repository first and listens only once every first worker has loaded its
 *   models (a caller never lands on a worker still loading); a worker that exits during that start stops the gateway
 *   (exit 1: the settings or the port are wrong, as a single process would have failed).
 * - **Version policies and reloads**: `SetVersionPolicy` and `ReloadModels` are applied by the worker that got the
 *   call, then by every other worker, before the call returns (the primary relays them); the primary remembers the
 *   policies set so, and a worker started later applies them before it listens.
 * - **Metrics**: the primary serves `CH8_GATEWAY_METRICS_ADDR`, the workers' registries summed (counters,
 *   histograms, calls in flight); the loaded-model gauges are the largest over the workers.
 * - **Failures and shutdown**: a worker that dies after the start is replaced (at most 5 times a minute, else the
 *   gateway exits 1); SIGTERM/SIGINT drains every worker, then the primary exits.
 *
 * This module runs in the primary without loading models or tfjs (main.ts imports the serving code only in workers).
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { createServiceMetrics, serveMetrics, type Registry } from '@ch8/service-kit/metrics';
import type { Logger } from '@ch8/service-kit/logger';
import type { VersionPolicy } from './config.ts';

/** What one worker asks all the others to do. */
export type ControlOp = { kind: 'reload' } | { kind: 'policy'; name: string; policy: VersionPolicy | undefined };

type ToPrimary =
  | { ch8: 'loaded' }
  | { ch8: 'broadcast'; id: number; op: ControlOp }
  | { ch8: 'applied'; id: number; error?: string };
type ToWorker =
  | { ch8: 'listen' }
  | { ch8: 'apply'; id: number; op: ControlOp }
  | { ch8: 'broadcast-done'; id: number; errors: string[] };

/** The environment variable carrying the policies set so far to a worker the primary starts (internal). */
const OVERRIDES_ENV = 'CH8_GATEWAY_WORKER_OVERRIDES';

const isMessage = (m: unknown): m is { ch8: string } =>
  typeof m === 'object' && m !== null && typeof (m as { ch8?: unknown }).ch8 === 'string';

/** The primary's metrics registry: what it serves is the workers' registries, aggregated. */
class ClusterRegistry extends AggregatorRegistry<'text/plain; version=0.0.4; charset=utf-8'> {
  override metrics(): Promise<string> {
    return this.clusterMetrics();
  }
}

export interface PrimaryOptions {
  workers: number;
  metricsAddress: string;
  logger: Logger;
  /** Longest the primary waits for its workers to drain after SIGTERM before it kills them, ms. */
  stopTimeoutMs?: number;
}

/** Runs the primary until the gateway stops; resolves with the exit code. */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { workers: count, logger } = options;
  const overrides = new Map<string, VersionPolicy | undefined>();
  const live = new Set<Worker>();
  /** Broadcasts under way: the worker that asked, the workers still to answer, their errors. */
  const broadcasts = new Map<number, { origin: Worker; id: number; waiting: Set<Worker>; errors: string[] }>();
  let nextBroadcast = 0;
  const loadedAtStart = new Set<Worker>();
  let started = false;
  let stopping = false;
  let exitCode = 0;
  const restarts: number[] = [];
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => (finish = resolve));

  const send = (w: Worker, m: ToWorker) => {
    if (w.isConnected()) w.send(m);
  };
  const settleBroadcast = (key: number) => {
    const b = broadcasts.get(key);
    if (b === undefined || b.waiting.size > 0) return;
    broadcasts.delete(key);
    send(b.origin, { ch8: 'broadcast-done', id: b.id, errors: b.errors });
  };

  let killTimer: NodeJS.Timeout | undefined;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    if (live.size === 0) return finish();
    for (const w of live) w.process.kill('SIGTERM');
    killTimer = setTimeout(() => {
      logger.warn('workers did not stop in time; killing them', { workers: live.size });
      for (const w of live) w.process.kill('SIGKILL');
    }, options.stopTimeoutMs ?? 60_000);
  };

  const fork = (): Worker => {
    const w = cluster.fork({ [OVERRIDES_ENV]: JSON.stringify([...overrides]) });
    live.add(w);
    w.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      const msg = m as ToPrimary;
      if (msg.ch8 === 'loaded') {
        if (started) return send(w, { ch8: 'listen' });
        loadedAtStart.add(w);
        if (loadedAtStart.size === count) {
          started = true;
          for (const s of loadedAtStart) send(s, { ch8: 'listen' });
          logger.info('workers started', { workers: count });
        }
      } else if (msg.ch8 === 'broadcast') {
        if (msg.op.kind === 'policy') overrides.set(msg.op.name, msg.op.policy);
        const key = nextBroadcast++;
        const others = [...live].filter((o) => o !== w && o.isConnected());
        broadcasts.set(key, { origin: w, id: msg.id, waiting: new Set(others), errors: [] });
        for (const o of others) send(o, { ch8: 'apply', id: key, op: msg.op });
        settleBroadcast(key);
      } else if (msg.ch8 === 'applied') {
        const b = broadcasts.get(msg.id);
        if (b === undefined || !b.waiting.delete(w)) return;
        if (msg.error !== undefined) b.errors.push(`worker ${w.id}: ${msg.error}`);
        settleBroadcast(msg.id);
      }
    });
    w.on('exit', (code, signal) => {
      live.delete(w);
      for (const [key, b] of broadcasts) if (b.waiting.delete(w)) settleBroadcast(key);
      if (stopping) {
        if (live.size === 0) finish();
        return;
      }
      if (!started) {
        logger.error('a worker exited while the gateway started; stopping', { worker: w.id, code, signal });
        return stop(1);
      }
      const now = Date.now();
      restarts.push(now);
      while (restarts[0]! < now - 60_000) restarts.shift();
      if (restarts.length > 5) {
        logger.error('workers keep exiting (more than 5 in a minute); stopping', { worker: w.id, code, signal });
        return stop(1);
      }
      logger.warn('worker exited; starting another', { worker: w.id, code, signal });
      setTimeout(() => {
        if (!stopping) fork();
      }, 500).unref();
    });
    return w;
  };

  const metricsServer = await serveMetrics({
    address: options.metricsAddress,
    metrics: createServiceMetrics('gateway', { registry: new ClusterRegistry() as unknown as Registry }),
    logger,
    field: 'CH8_GATEWAY_METRICS_ADDR',
    processMetrics: false,
  });
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  for (let i = 0; i < count; i++) fork();
  await done;
  clearTimeout(killTimer);
  await metricsServer?.close();
  return exitCode;
}

/** The worker's side: what main.ts and the server need from the primary. */
export interface WorkerLink {
  /** cluster.worker.id */
  readonly id: number;
  /** Policies set through the API before this worker started, to apply before it listens. */
  readonly overrides: readonly [string, VersionPolicy | undefined][];
  /** Tells the primary this worker loaded its models; resolves when it may listen. */
  loaded(): Promise<void>;
  /** Has every other worker apply `op`; resolves once they did (their failures are logged here, not thrown). */
  broadcast(op: ControlOp): Promise<void>;
  /** How this worker applies an op another worker broadcast. */
  onApply(apply: (op: ControlOp) => Promise<void>): void;
  /** Makes `registry` the one the primary aggregates. */
  shareMetrics(registry: Registry): void;
}

/** The link to the primary when this process is a cluster worker, else undefined. */
export function workerLink(logger: Logger): WorkerLink | undefined {
  const worker = cluster.worker;
  if (!cluster.isWorker || worker === undefined) return undefined;
  const raw = process.env[OVERRIDES_ENV];
  const overrides = raw !== undefined && raw !== '' ? (JSON.parse(raw) as [string, VersionPolicy | undefined][]) : [];
  let nextId = 0;
  const waiting = new Map<number, () => void>();
  let listen: (() => void) | undefined;
  let apply: ((op: ControlOp) => Promise<void>) | undefined;
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    const msg = m as ToWorker;
    if (msg.ch8 === 'listen') listen?.();
    else if (msg.ch8 === 'broadcast-done') {
      if (msg.errors.length > 0) logger.warn('other workers failed to apply a change', { errors: msg.errors });
      waiting.get(msg.id)?.();
      waiting.delete(msg.id);
    } else if (msg.ch8 === 'apply') {
      const reply = (error?: string) =>
        process.send?.({ ch8: 'applied', id: msg.id, ...(error !== undefined ? { error } : {}) } satisfies ToPrimary);
      if (apply === undefined) return reply();
      apply(msg.op).then(
        () => reply(),
        (e: unknown) => reply(e instanceof Error ? e.message : String(e)),
      );
    }
  });
  return {
    id: worker.id,
    overrides,
    loaded: () =>
      new Promise<void>((resolve) => {
        listen = resolve;
        process.send?.({ ch8: 'loaded' } satisfies ToPrimary);
      }),
    broadcast: (op) =>
      new Promise<void>((resolve) => {
        const id = nextId++;
        waiting.set(id, resolve);
        process.send?.({ ch8: 'broadcast', id, op } satisfies ToPrimary);
      }),
    onApply(fn) {
      apply = fn;
    },
    shareMetrics(registry) {
      AggregatorRegistry.setRegistries([registry]);
      new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
    },
  };
}
