/**
 * The gateway server: the text API (ch8.gateway.v1.GatewayService) and the Open Inference Protocol
 * (inference.GRPCInferenceService) over the models of a repository, with dynamic batching, hot reload, version
 * policies, health gated on a ready model, and Prometheus metrics.
 */
import { GatewayService, VersionState, type ModelEntry } from '@ch8/contracts/gateway';
import { GRPCInferenceService } from '@ch8/contracts/inference';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ModelEntrySchema } from '@ch8/contracts/gateway';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { createServer, type CallContext, type Ch8Server } from '@ch8/service-kit/server';
import type { Logger } from '@ch8/service-kit/logger';
import type { ControlOp } from './cluster.ts';
import type { GatewayConfig, VersionPolicy } from './config.ts';
import { createGatewayMetrics, type GatewayMetrics } from './metrics.ts';
import { encodeOutputs, PLATFORM, requestedOutputs, textsOf } from './oip.ts';
import { ModelStore, type VersionStatus } from './store.ts';
import { checkTexts } from './text.ts';

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  /** Process-level metrics (CPU, memory, event loop) in the registry; default true (tests turn them off). */
  defaultMetrics?: boolean;
  /**
   * The other serving processes of the gateway (cluster.ts): a reload or a version policy applied here is applied by
   * them too before the call returns. None: this process is the whole gateway.
   */
  peers?: { broadcast(op: ControlOp): Promise<void> };
}

export interface Gateway {
  server: Ch8Server;
  store: ModelStore;
  metrics: GatewayMetrics;
  /** Resolves once the first scan of the repository finished (models loaded or failed). */
  loaded: Promise<void>;
  /** Applies a reload or a version policy another serving process of the gateway was asked for. */
  apply(op: ControlOp): Promise<void>;
  close(): Promise<void>;
}

export const SERVER_NAME = 'ch8-gateway';
export const SERVER_VERSION = '0.1.0';
/** Health entries that are SERVING only while at least one model is ready. */
export const MODEL_GATED_SERVICES = [GatewayService.typeName, GRPCInferenceService.typeName] as const;

const STATE: Record<VersionStatus['state'], VersionState> = {
  available: VersionState.AVAILABLE,
  loading: VersionState.LOADING,
  ready: VersionState.READY,
  unloading: VersionState.UNLOADING,
  failed: VersionState.FAILED,
};

function entryOf(s: VersionStatus): MessageInitShape<typeof ModelEntrySchema> {
  return {
    name: s.name,
    version: String(s.version),
    kind: s.kind ?? '',
    vocabHash: s.vocabHash ?? '',
    tokenizer: s.tokenizer ?? '',
    devAccuracy: s.devAccuracy ?? 0,
    ready: s.state === 'ready',
    state: STATE[s.state],
    error: s.error ?? '',
    defaultVersion: s.isDefault,
  };
}

function policyMessage(p: VersionPolicy) {
  return {
    choice:
      p.kind === 'pinned'
        ? { case: 'pinnedVersion' as const, value: p.version }
        : { case: 'latest' as const, value: p.count },
  };
}

export function createGatewayServer(deps: GatewayDeps): Gateway {
  const { config, logger } = deps;
  const metrics = createGatewayMetrics({ defaultMetrics: deps.defaultMetrics ?? true });
  const limits = { maxTexts: config.maxTextsPerCall, maxTextBytes: config.maxTextBytes };
  let marked = false;
  let stopping = false;

  const syncHealth = () => {
    if (!marked || stopping) return;
    const status = store.anyReady() ? 'SERVING' : 'NOT_SERVING';
    for (const s of MODEL_GATED_SERVICES) inner.setStatus(s, status);
  };
  const store: ModelStore = new ModelStore({
    root: config.modelRepository,
    logger,
    batching: { maxBatch: config.maxBatch, maxDelayMs: config.maxDelayMs, maxQueue: config.maxQueue },
    keepVersions: config.keepVersions,
    policies: config.versionPolicies,
    defaultModel: config.defaultModel,
    drainTimeoutMs: config.drainTimeoutMs,
    observer: (name) => metrics.observer(name),
    onChange: () => {
      metrics.setLoaded(store.loadedCounts());
      syncHealth();
    },
    onFailure: (name) => metrics.loadFailure(name),
  });

  /**
   * Labels the call's metrics (the kit's, recorded with its final status) with the model as soon as it is resolved, so
   * a call cancelled or past its deadline later still carries it.
   */
  const labelModel = (ctx: CallContext, name: string) => ctx.setMetricLabel('model', name);

  const list = async (): Promise<MessageInitShape<typeof ModelEntrySchema>[]> => (await store.list()).map(entryOf);

  const inner = createServer({ name: 'gateway', logger, metrics: metrics.service, metricLabels: ['model'] })
    .add(GatewayService, {
      predict: async (req, ctx) => {
        const version = ModelStore.parseVersion(req.modelVersion);
        const name = store.resolveName(req.modelName);
        labelModel(ctx, name);
        checkTexts(req.texts, limits, 'texts');
        const lease = store.acquire(name, version);
        try {
          const model = lease.model;
          const predictions = await model.predict(req.texts, { deadline: ctx.deadline, signal: ctx });
          metrics.texts(name, String(model.version), predictions.length);
          return {
            modelName: name,
            modelVersion: String(model.version),
            predictions: predictions.map((p, i) => ({
              text: req.texts[i]!,
              label: p.label,
              labelId: p.labelId,
              probability: p.probability,
              tokens: p.tokens,
              oovTokens: p.oov,
              noKnownToken: p.noKnownToken,
            })),
          };
        } finally {
          lease.release();
        }
      },
      listModels: async () => ({
        models: await list(),
        policies: store.policies().map((p) => ({
          modelName: p.name,
          policy: policyMessage(p.policy),
          overridden: p.overridden,
        })),
        defaultModel: store.defaultModelName(),
      }),
      reloadModels: async () => {
        await store.reconcile();
        await deps.peers?.broadcast({ kind: 'reload' });
        return { models: await list() };
      },
      setVersionPolicy: async (req, ctx) => {
        const name = store.resolveName(req.modelName);
        labelModel(ctx, name);
        const choice = req.policy?.choice;
        let policy: VersionPolicy | undefined;
        if (choice?.case === 'pinnedVersion') {
          if (choice.value < 1) throw new InvalidInputError('must be >= 1', { field: 'policy.pinned_version' });
          policy = { kind: 'pinned', version: choice.value };
        } else if (choice?.case === 'latest') {
          if (choice.value < 1) throw new InvalidInputError('must be >= 1', { field: 'policy.latest' });
          policy = { kind: 'latest', count: choice.value };
        }
        const status = await store.setPolicy(name, policy);
        await deps.peers?.broadcast({ kind: 'policy', name, policy });
        return {
          policy: { modelName: status.name, policy: policyMessage(status.policy), overridden: status.overridden },
          models: (await list()).filter((m: Partial<ModelEntry>) => m.name === name),
        };
      },
    })
    .add(GRPCInferenceService, {
      serverLive: async () => ({ live: true }),
      serverReady: async () => ({ ready: store.anyReady() }),
      modelReady: async (req, ctx) => {
        const version = ModelStore.parseVersion(req.version, 'version');
        // An unknown model is not ready (not an error), as in Triton.
        if (req.name !== '' && !store.has(req.name)) return { ready: false };
        const name = store.resolveName(req.name, 'name');
        labelModel(ctx, name);
        return { ready: store.find(name, version) !== undefined };
      },
      serverMetadata: async () => ({
        name: SERVER_NAME,
        version: SERVER_VERSION,
        extensions: [],
      }),
      modelMetadata: async (req, ctx) => {
        const version = ModelStore.parseVersion(req.version, 'version');
        const name = store.resolveName(req.name, 'name');
        labelModel(ctx, name);
        const model = store.find(name, version);
        if (model === undefined) {
          throw new NotFoundError(
            `${version === undefined ? 'no version' : `version ${version}`} of model ${name} is ready (ready: ${store.readyVersions(name).join(', ') || 'none'})`,
            { field: 'version' },
          );
        }
        const tensor = (t: { name: string; datatype: string; shape: number[] }) => ({
          name: t.name,
          datatype: t.datatype,
          shape: t.shape.map((d) => BigInt(d)),
        });
        return {
          name,
          versions: store.readyVersions(name).map(String),
          platform: PLATFORM,
          inputs: model.manifest.signature.inputs.map(tensor),
          outputs: model.manifest.signature.outputs.map(tensor),
        };
      },
      modelInfer: async (req, ctx) => {
        const version = ModelStore.parseVersion(req.modelVersion);
        const name = store.resolveName(req.modelName);
        labelModel(ctx, name);
        const texts = textsOf(req);
        const outputs = requestedOutputs(req);
        checkTexts(texts, limits, `inputs[0] (${req.inputs[0]!.name})`);
        const lease = store.acquire(name, version);
        try {
          const model = lease.model;
          const predictions = await model.predict(texts, { deadline: ctx.deadline, signal: ctx });
          metrics.texts(name, String(model.version), predictions.length);
          const encoded = encodeOutputs(outputs, predictions);
          return {
            modelName: name,
            modelVersion: String(model.version),
            id: req.id,
            outputs: encoded.outputs,
            rawOutputContents: encoded.raw,
          };
        } finally {
          lease.release();
        }
      },
    });

  // The server as callers see it: `ready()` leaves the model-gated entries to the store, shutdown stops that.
  const server: Ch8Server = {
    add(service, handlers) {
      inner.add(service, handlers);
      return server;
    },
    listen: (address) => inner.listen(address),
    setStatus: (service, status) => inner.setStatus(service, status),
    ready(except = []) {
      inner.ready([...except, ...MODEL_GATED_SERVICES]);
      marked = true;
      syncHealth();
    },
    shutdown(graceMs) {
      stopping = true;
      return inner.shutdown(graceMs);
    },
    get inFlight() {
      return inner.inFlight;
    },
    metrics: inner.metrics,
    logger: inner.logger,
    grpc: inner.grpc,
  };

  const loaded = store.startPolling(config.pollIntervalMs);
  return {
    server,
    store,
    metrics,
    loaded,
    apply: async (op) => {
      if (op.kind === 'reload') await store.reconcile();
      else await store.setPolicy(op.name, op.policy);
    },
    close: () => store.close(),
  };
}
