/**
 * The models the gateway serves, kept in step with the model repository `<root>/<name>/<version>/`.
 *
 * A reconcile (on start, every poll interval, on ReloadModels and on SetVersionPolicy; one at a time) lists the
 * repository, works out the versions each model's policy wants (a pinned version, or the newest N that load),
 * loads and warms up the missing ones while the current ones keep serving, then switches the model's default
 * version in one step and drains and unloads the versions no longer wanted. A version that fails to load is
 * recorded with its reason and skipped (the previous one keeps serving) until its files change.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidInputError, NotFoundError, isKnownError } from '@ch8/errors';
import type { ModelManifest } from '@ch8/model-repository/manifest';
import { listModels, listVersions, readManifest } from '@ch8/model-repository/repository';
import { formatTokenizerSpec } from '@ch8/tokenizer';
import type { Logger } from '@ch8/service-kit/logger';
import type { BatchObserver } from './batcher.ts';
import type { VersionPolicy } from './config.ts';
import { LoadedVersion, type BatchingOptions } from './loaded.ts';

export type VersionStateName = 'available' | 'loading' | 'ready' | 'unloading' | 'failed';

export interface VersionStatus {
  name: string;
  version: number;
  state: VersionStateName;
  /** Why loading failed (state failed). */
  error?: string;
  /** Read from the manifest when it could be read. */
  kind?: string;
  vocabHash?: string;
  tokenizer?: string;
  devAccuracy?: number | null;
  /** The version answering requests that name none. */
  isDefault: boolean;
}

export interface ModelPolicyStatus {
  name: string;
  policy: VersionPolicy;
  /** Set through setPolicy (not the configured default). */
  overridden: boolean;
}

interface VersionRecord {
  version: number;
  dir: string;
  state: VersionStateName;
  loaded?: LoadedVersion;
  error?: string;
  /** Size and mtime of the files when loading failed: retried only once they change. */
  failedFingerprint?: string;
  summary?: Pick<VersionStatus, 'kind' | 'vocabHash' | 'tokenizer' | 'devAccuracy'>;
}

interface ModelRecord {
  name: string;
  versions: Map<number, VersionRecord>;
  /** The version answering requests that name none; undefined while none is ready. */
  defaultVersion: number | undefined;
  override?: VersionPolicy;
}

export interface StoreOptions {
  root: string;
  logger: Logger;
  batching: BatchingOptions;
  /** The policy of a model without one of its own: the newest `keepVersions`. */
  keepVersions: number;
  policies: ReadonlyMap<string, VersionPolicy>;
  defaultModel: string;
  drainTimeoutMs: number;
  observer?: (name: string) => BatchObserver;
  /** Called after anything that may change readiness (loads, unloads, failures). */
  onChange?: () => void;
  /** Called when a version fails to load. */
  onFailure?: (name: string, version: number, reason: string) => void;
}

/** A version held for one request; release it when the request is done. */
export interface Lease {
  readonly model: LoadedVersion;
  release(): void;
}

function summaryOf(m: ModelManifest): NonNullable<VersionRecord['summary']> {
  return {
    kind: m.model.kind,
    vocabHash: m.vocabulary.hash,
    tokenizer: formatTokenizerSpec(m.tokenizer.raw),
    devAccuracy: m.metrics.devAccuracy,
  };
}

async function fingerprint(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const f of ['manifest.json', 'weights.bin']) {
    try {
      const s = await stat(join(dir, f));
      parts.push(`${f}:${s.size}:${s.mtimeMs}`);
    } catch {
      parts.push(`${f}:missing`);
    }
  }
  return parts.join(',');
}

function reasonOf(e: unknown): string {
  if (isKnownError(e)) return `${e.name}: ${e.message}`;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

export function describePolicy(p: VersionPolicy): string {
  return p.kind === 'pinned' ? `pinned to version ${p.version}` : `newest ${p.count}`;
}

export class ModelStore {
  readonly #o: StoreOptions;
  readonly #models = new Map<string, ModelRecord>();
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #unloads = new Set<Promise<void>>();

  constructor(options: StoreOptions) {
    this.#o = options;
  }

  get root(): string {
    return this.#o.root;
  }

  /** Scans every `intervalMs` (0: never) until close; the first scan runs at once. */
  startPolling(intervalMs: number): Promise<void> {
    const first = this.reconcile();
    if (intervalMs > 0) {
      const tick = () => {
        this.#timer = setTimeout(() => {
          void this.reconcile().finally(() => {
            if (!this.#closed) tick();
          });
        }, intervalMs);
        this.#timer.unref();
      };
      void first.finally(() => {
        if (!this.#closed) tick();
      });
    }
    return first;
  }

  /** Runs a reconcile after the ones already queued; never rejects (failures are recorded per version). */
  reconcile(): Promise<void> {
    const run = this.#chain.then(() => (this.#closed ? undefined : this.#reconcile()));
    this.#chain = run.catch((e) => this.#o.logger.error('reconcile failed', { err: e }));
    return this.#chain;
  }

  policyOf(name: string): VersionPolicy {
    return (
      this.#models.get(name)?.override ?? this.#o.policies.get(name) ?? { kind: 'latest', count: this.#o.keepVersions }
    );
  }

  /**
   * Sets (or, with undefined, clears) a model's policy and applies it. A pinned version must exist; if it fails to
   * load, the previous policy is restored and the call fails with the reason.
   */
  async setPolicy(name: string, policy: VersionPolicy | undefined): Promise<ModelPolicyStatus> {
    await this.reconcile();
    const model = this.#models.get(name);
    if (model === undefined) throw this.#unknownModel(name);
    if (policy?.kind === 'pinned' && !model.versions.has(policy.version)) {
      throw new NotFoundError(
        `model ${name} has no version ${policy.version} (versions: ${[...model.versions.keys()].join(', ') || 'none'})`,
        { field: 'policy.pinned_version' },
      );
    }
    const previous = model.override;
    if (policy === undefined) delete model.override;
    else model.override = policy;
    await this.reconcile();
    if (policy?.kind === 'pinned') {
      const record = model.versions.get(policy.version);
      if (record?.state !== 'ready') {
        if (previous === undefined) delete model.override;
        else model.override = previous;
        await this.reconcile();
        throw new FailedPreconditionError(
          `version ${policy.version} of model ${name} could not be served: ${record?.error ?? 'it is gone from the repository'}; the previous policy stays`,
          { field: 'policy.pinned_version' },
        );
      }
    }
    this.#o.logger.info('version policy set', { model: name, policy: describePolicy(this.policyOf(name)) });
    return { name, policy: this.policyOf(name), overridden: model.override !== undefined };
  }

  policies(): ModelPolicyStatus[] {
    return [...this.#models.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((m) => ({ name: m.name, policy: this.policyOf(m.name), overridden: m.override !== undefined }));
  }

  async #reconcile(): Promise<void> {
    let names: string[];
    try {
      names = await listModels(this.#o.root);
    } catch (e) {
      this.#o.logger.warn('cannot list the model repository', { root: this.#o.root, err: e });
      return;
    }
    for (const name of [...this.#models.keys()]) {
      if (!names.includes(name)) {
        const model = this.#models.get(name)!;
        for (const v of [...model.versions.values()]) this.#unload(model, v, 'gone from the repository');
        this.#models.delete(name);
        this.#o.logger.info('model removed', { model: name });
      }
    }
    for (const name of names) {
      if (this.#closed) return;
      let model = this.#models.get(name);
      if (model === undefined) {
        model = { name, versions: new Map(), defaultVersion: undefined };
        this.#models.set(name, model);
      }
      await this.#reconcileModel(model);
    }
    this.#o.onChange?.();
  }

  async #reconcileModel(model: ModelRecord): Promise<void> {
    const onDisk = new Set(await listVersions(this.#o.root, model.name).catch(() => [] as number[]));
    for (const [v, record] of [...model.versions]) {
      if (!onDisk.has(v)) {
        this.#unload(model, record, 'gone from the repository');
        model.versions.delete(v);
      }
    }
    if (model.defaultVersion !== undefined && !model.versions.has(model.defaultVersion)) {
      // The default version was deleted: an older ready one answers until this reconcile settles.
      const ready = this.readyVersions(model.name);
      model.defaultVersion = ready.length > 0 ? Math.max(...ready) : undefined;
    }
    for (const v of onDisk) {
      if (!model.versions.has(v)) {
        model.versions.set(v, { version: v, dir: join(this.#o.root, model.name, String(v)), state: 'available' });
      }
    }
    // Failed versions are tried again once their files change (a re-export under the same number, a fix by hand).
    for (const r of model.versions.values()) {
      if (r.state === 'failed' && r.failedFingerprint !== (await fingerprint(r.dir))) {
        r.state = 'available';
        delete r.error;
        delete r.failedFingerprint;
      }
    }
    let policy = this.policyOf(model.name);
    if (policy.kind === 'pinned' && !model.versions.has(policy.version)) {
      this.#o.logger.warn('pinned version is not in the repository; serving by the default policy', {
        model: model.name,
        version: policy.version,
      });
      policy = { kind: 'latest', count: this.#o.keepVersions };
    }
    const wanted = (): number[] => {
      if (policy.kind === 'pinned')
        return model.versions.get(policy.version)?.state === 'failed' ? [] : [policy.version];
      return [...model.versions.values()]
        .filter((r) => r.state !== 'failed')
        .map((r) => r.version)
        .sort((a, b) => b - a)
        .slice(0, policy.count);
    };
    // Load what is wanted and not ready, newest first; each failure changes what is wanted (the next older one).
    for (;;) {
      if (this.#closed) return;
      const next = wanted().find((v) => model.versions.get(v)!.state !== 'ready');
      if (next === undefined) break;
      await this.#load(model, model.versions.get(next)!);
    }
    const serving = wanted().filter((v) => model.versions.get(v)?.state === 'ready');
    if (serving.length === 0) {
      // Nothing wanted could load: whatever serves now keeps serving.
      const ready = [...model.versions.values()].filter((r) => r.state === 'ready').map((r) => r.version);
      model.defaultVersion = ready.length > 0 ? Math.max(...ready) : undefined;
      return;
    }
    const previous = model.defaultVersion;
    model.defaultVersion = policy.kind === 'pinned' ? policy.version : Math.max(...serving);
    if (previous !== model.defaultVersion) {
      this.#o.logger.info('default version switched', {
        model: model.name,
        from: previous ?? null,
        to: model.defaultVersion,
      });
    }
    for (const r of model.versions.values()) {
      if (r.state === 'ready' && !serving.includes(r.version)) this.#unload(model, r, describePolicy(policy));
    }
  }

  async #load(model: ModelRecord, record: VersionRecord): Promise<void> {
    record.state = 'loading';
    const started = Date.now();
    try {
      const loaded = await LoadedVersion.load(record.dir, this.#o.batching, this.#o.observer?.(model.name));
      if (this.#closed) {
        await loaded.drainAndDispose(0);
        return;
      }
      record.loaded = loaded;
      record.state = 'ready';
      record.summary = summaryOf(loaded.manifest);
      this.#o.logger.info('version loaded', {
        model: model.name,
        version: record.version,
        kind: loaded.manifest.model.kind,
        compute: loaded.compute.path,
        ms: Date.now() - started,
      });
      const { path, maxDifference } = loaded.compute;
      if (path === 'tfjs' && maxDifference !== undefined) {
        this.#o.logger.warn('the plain bag-of-words scorer differs from the tfjs forward pass; computing with tfjs', {
          model: model.name,
          version: record.version,
          max_difference: maxDifference,
        });
      }
    } catch (e) {
      record.state = 'failed';
      record.error = reasonOf(e);
      record.failedFingerprint = await fingerprint(record.dir);
      this.#o.logger.warn('version failed to load', {
        model: model.name,
        version: record.version,
        reason: record.error,
      });
      this.#o.onFailure?.(model.name, record.version, record.error);
    }
    this.#o.onChange?.();
  }

  #unload(model: ModelRecord, record: VersionRecord, why: string): void {
    const loaded = record.loaded;
    if (loaded === undefined) {
      if (record.state !== 'failed') record.state = 'available';
      return;
    }
    delete record.loaded;
    record.state = 'unloading';
    if (model.defaultVersion === record.version) model.defaultVersion = undefined;
    const leases = loaded.leases;
    this.#o.logger.info('unloading version', { model: model.name, version: record.version, why, in_flight: leases });
    const done = loaded.drainAndDispose(this.#o.drainTimeoutMs).then((left) => {
      if (left > 0) {
        this.#o.logger.warn('drain timed out; version disposed with requests in flight', {
          model: model.name,
          version: record.version,
          in_flight: left,
        });
      }
      if (record.state === 'unloading') record.state = 'available';
      this.#unloads.delete(done);
      this.#o.onChange?.();
    });
    this.#unloads.add(done);
  }

  #unknownModel(name: string, field = 'model_name'): NotFoundError {
    const names = this.modelNames();
    return new NotFoundError(
      `no model ${JSON.stringify(name)} in the repository (models: ${names.length > 0 ? names.join(', ') : 'none'})`,
      { field },
    );
  }

  /** Names of the models in the repository, sorted. */
  modelNames(): string[] {
    return [...this.#models.keys()].sort();
  }

  /** Models with a ready default version. */
  readyModelNames(): string[] {
    return this.modelNames().filter((n) => this.#models.get(n)!.defaultVersion !== undefined);
  }

  anyReady(): boolean {
    return this.readyModelNames().length > 0;
  }

  /**
   * The model a request means: `name`, or when empty the configured default model, or the only model. Several
   * models and no default: InvalidInputError listing them.
   */
  resolveName(name: string, field = 'model_name'): string {
    if (name !== '') {
      if (!this.#models.has(name)) throw this.#unknownModel(name, field);
      return name;
    }
    if (this.#o.defaultModel !== '') {
      if (!this.#models.has(this.#o.defaultModel)) {
        throw new NotFoundError(`the default model ${JSON.stringify(this.#o.defaultModel)} is not in the repository`, {
          field,
        });
      }
      return this.#o.defaultModel;
    }
    const names = this.modelNames();
    if (names.length === 1) return names[0]!;
    if (names.length === 0) {
      throw new FailedPreconditionError(`no model is loaded: the repository ${this.#o.root} has no model version yet`, {
        field,
      });
    }
    throw new InvalidInputError(`several models are served, name one of: ${names.join(', ')}`, { field });
  }

  /** The default model's name, when there is one ('' otherwise). */
  defaultModelName(): string {
    try {
      return this.resolveName('');
    } catch {
      return '';
    }
  }

  /** Parses a version field: '' (the default version) or a positive integer. */
  static parseVersion(text: string, field = 'model_version'): number | undefined {
    if (text === '') return undefined;
    if (!/^[1-9]\d*$/.test(text)) {
      throw new InvalidInputError(`must be a positive integer version, got ${JSON.stringify(text)}`, { field });
    }
    return Number(text);
  }

  has(name: string): boolean {
    return this.#models.has(name);
  }

  /** The loaded version a request goes to, or undefined (not an error): for ModelReady. */
  find(name: string, version: number | undefined): LoadedVersion | undefined {
    const model = this.#models.get(name);
    if (model === undefined) return undefined;
    const v = version ?? model.defaultVersion;
    return v === undefined ? undefined : model.versions.get(v)?.loaded;
  }

  /** Ready versions of a model, ascending. */
  readyVersions(name: string): number[] {
    const model = this.#models.get(name);
    if (model === undefined) return [];
    return [...model.versions.values()]
      .filter((r) => r.state === 'ready' && r.loaded !== undefined)
      .map((r) => r.version)
      .sort((a, b) => a - b);
  }

  /** Holds the version a request goes to: NotFoundError for an unknown model or a version not being served. */
  acquire(name: string, version: number | undefined): Lease {
    const resolved = this.resolveName(name);
    const model = this.#models.get(resolved)!;
    // A version is picked and held in one synchronous step, so a swap never hands out a draining version.
    const v = version ?? model.defaultVersion;
    const loaded = v === undefined ? undefined : model.versions.get(v)?.loaded;
    if (loaded === undefined || !loaded.acquire()) {
      if (version === undefined) {
        const failed = [...model.versions.values()]
          .filter((r) => r.state === 'failed')
          .map((r) => `version ${r.version}: ${r.error}`);
        throw new FailedPreconditionError(
          `model ${resolved} has no version ready${failed.length > 0 ? ` (failed: ${failed.join('; ')})` : ' yet'}`,
          { field: 'model_name' },
        );
      }
      const record = model.versions.get(version);
      const serving = this.readyVersions(resolved);
      const why =
        record === undefined
          ? 'is not in the repository'
          : record.state === 'failed'
            ? `failed to load (${record.error})`
            : `is not loaded (${record.state})`;
      throw new NotFoundError(
        `version ${version} of model ${resolved} ${why}; serving: ${serving.length > 0 ? serving.join(', ') : 'none'}`,
        { field: 'model_version' },
      );
    }
    let released = false;
    return {
      model: loaded,
      release: () => {
        if (released) return;
        released = true;
        loaded.release();
      },
    };
  }

  /** Every known version, by model name then version. Manifests of versions never loaded are read once. */
  async list(): Promise<VersionStatus[]> {
    const out: VersionStatus[] = [];
    for (const name of this.modelNames()) {
      const model = this.#models.get(name)!;
      for (const r of [...model.versions.values()].sort((a, b) => a.version - b.version)) {
        if (r.summary === undefined && r.state !== 'failed') {
          try {
            r.summary = summaryOf(await readManifest(r.dir));
          } catch {
            // Reported when it is loaded.
          }
        }
        const status: VersionStatus = {
          name,
          version: r.version,
          state: r.state,
          isDefault: model.defaultVersion === r.version,
          ...r.summary,
        };
        if (r.error !== undefined) status.error = r.error;
        out.push(status);
      }
    }
    return out;
  }

  /** Loaded versions per model (for metrics). */
  loadedCounts(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const name of this.modelNames()) out.set(name, this.readyVersions(name));
    return out;
  }

  /** Stops polling, waits for a running reconcile, drains and unloads everything. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#chain;
    for (const model of this.#models.values())
      for (const r of model.versions.values()) this.#unload(model, r, 'closing');
    await Promise.all([...this.#unloads]);
  }
}
