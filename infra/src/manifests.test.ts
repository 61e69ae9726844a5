/**
 * The Kubernetes manifests of infra/k8s: every kustomization (the base and each overlay) renders, every object
 * validates against the Kubernetes API schemas, and the stack's own rules hold (probes, resources, one trainer on
 * the shared volume, the gateway's autoscaler, the GPU overlay). With `kubectl` installed, this package's renderer
 * is also compared with `kubectl kustomize` on every kustomization.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { buildKustomization, objectId, parseYamlDocuments, type K8sObject } from './kustomize.ts';
import { isObject, type Json, type JsonObject } from './strategic-merge.ts';
import { formatProblems, validateObjects } from './validate.ts';

const K8S = fileURLToPath(new URL('../k8s/', import.meta.url));
const SERVICES = ['embedding', 'dataset', 'trainer', 'gateway'] as const;
const PORTS: Record<(typeof SERVICES)[number], number> = {
  embedding: 50051,
  dataset: 50052,
  trainer: 50053,
  gateway: 50054,
};

/** Every kustomization under infra/k8s: base and overlays/*. */
async function kustomizations(): Promise<string[]> {
  const overlays = await readdir(join(K8S, 'overlays'), { withFileTypes: true });
  return ['base', ...overlays.filter((d) => d.isDirectory()).map((d) => `overlays/${d.name}`)];
}

/** The value at a dotted path (keys without dots). */
function get(o: Json | undefined, path: string): Json | undefined {
  let v: Json | undefined = o;
  for (const key of path.split('.')) v = isObject(v) ? v[key] : undefined;
  return v;
}

function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
}

function podSpec(d: K8sObject): JsonObject {
  const spec = get(d, 'spec.template.spec');
  assert.ok(isObject(spec), `${objectId(d)} has a pod template`);
  return spec;
}

function containers(d: K8sObject): JsonObject[] {
  const list = podSpec(d)['containers'];
  assert.ok(Array.isArray(list) && list.every(isObject), `${objectId(d)} has containers`);
  return list as JsonObject[];
}

function podLabels(d: K8sObject): JsonObject {
  const labels = get(d, 'spec.template.metadata.labels');
  return isObject(labels) ? labels : {};
}

function envOf(c: JsonObject): Record<string, string> {
  const env = Array.isArray(c['env']) ? c['env'] : [];
  return Object.fromEntries(env.filter(isObject).map((e) => [String(e['name']), String(e['value'])]));
}

const rendered = new Map<string, K8sObject[]>();

before(async () => {
  for (const k of await kustomizations()) rendered.set(k, await buildKustomization(join(K8S, k)));
});

function objectsOf(k: string): K8sObject[] {
  const o = rendered.get(k);
  assert.ok(o, `${k} rendered`);
  return o;
}

describe('every kustomization', () => {
  test('there are a base, a dev and a gpu overlay', async () => {
    assert.deepEqual((await kustomizations()).sort(), ['base', 'overlays/dev', 'overlays/gpu']);
  });

  test('validates against the Kubernetes API schemas (types, required fields, no unknown field)', async () => {
    for (const [k, objects] of rendered) {
      const problems = await validateObjects(objects);
      assert.equal(problems.length, 0, `${k}:\n${formatProblems(problems)}`);
    }
  });

  test('every Deployment: gRPC readiness and liveness probes on a declared port, requests and a memory limit, non-root', () => {
    for (const [k, objects] of rendered) {
      const deployments = objects.filter((o) => o.kind === 'Deployment');
      assert.deepEqual(deployments.map((d) => d.metadata.name).sort(), [...SERVICES].sort(), k);
      for (const d of deployments) {
        const id = `${k} ${objectId(d)}`;
        const security = podSpec(d)['securityContext'];
        assert.equal(get(security, 'runAsNonRoot'), true, `${id} runs as non-root`);
        assert.notEqual(get(security, 'runAsUser'), 0, id);
        for (const c of containers(d)) {
          const ports = (Array.isArray(c['ports']) ? c['ports'] : []).map((p) => get(p, 'containerPort'));
          for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
            const port = get(c, `${probe}.grpc.port`);
            assert.ok(typeof port === 'number' && ports.includes(port), `${id} ${probe} is gRPC on a container port`);
          }
          assert.ok(get(c, 'resources.requests.cpu'), `${id} requests cpu`);
          assert.ok(get(c, 'resources.requests.memory'), `${id} requests memory`);
          assert.ok(get(c, 'resources.limits.memory'), `${id} limits memory`);
          assert.equal(get(c, 'securityContext.allowPrivilegeEscalation'), false, id);
          const name = d.metadata.name as (typeof SERVICES)[number];
          assert.equal(
            envOf(c)[`CH8_${name.toUpperCase()}_ADDR`],
            `0.0.0.0:${PORTS[name]}`,
            `${id} listens on all interfaces`,
          );
          assert.match(String(c['image']), new RegExp(`^ch8-${name}(:|@|$)`), `${id} runs its own image`);
          // Prometheus metrics on all interfaces, on the port the pod's scrape annotations name.
          const metrics = (c['ports'] as Json[]).find((p) => get(p, 'name') === 'metrics');
          const port = get(metrics, 'containerPort');
          assert.equal(envOf(c)[`CH8_${name.toUpperCase()}_METRICS_ADDR`], `0.0.0.0:${String(port)}`, id);
          const annotations = get(d, 'spec.template.metadata.annotations') as JsonObject;
          assert.equal(annotations['prometheus.io/port'], String(port), id);
          assert.equal(annotations['prometheus.io/scrape'], 'true', id);
        }
      }
    }
  });

  test('references resolve: Services select pods of a Deployment on a named port, config maps and claims exist', () => {
    for (const [k, objects] of rendered) {
      const deployments = objects.filter((o) => o.kind === 'Deployment');
      for (const s of objects.filter((o) => o.kind === 'Service')) {
        const selector = get(s, 'spec.selector');
        assert.ok(isObject(selector), `${k} ${objectId(s)} has a selector`);
        const targets = deployments.filter((d) =>
          Object.entries(selector).every(([key, v]) => podLabels(d)[key] === v),
        );
        assert.equal(targets.length, 1, `${k} ${objectId(s)} selects one Deployment`);
        const names = containers(targets[0] as K8sObject).flatMap((c) =>
          (Array.isArray(c['ports']) ? c['ports'] : []).map((p) => get(p, 'name')),
        );
        for (const p of get(s, 'spec.ports') as Json[])
          assert.ok(names.includes(get(p, 'targetPort') as string), `${k} ${objectId(s)} port`);
      }
      for (const d of deployments) {
        // The selector matches the template's labels.
        for (const [key, v] of Object.entries(get(d, 'spec.selector.matchLabels') as JsonObject))
          assert.equal(podLabels(d)[key], v, `${k} ${objectId(d)} selector`);
        for (const v of (podSpec(d)['volumes'] as Json[]) ?? []) {
          const claim = get(v, 'persistentVolumeClaim.claimName');
          if (claim !== undefined) find(objects, 'PersistentVolumeClaim', claim as string);
        }
        for (const c of containers(d))
          for (const e of (c['envFrom'] as Json[]) ?? [])
            find(objects, 'ConfigMap', get(e, 'configMapRef.name') as string);
      }
    }
  });

  test('the trainer: one replica, Recreate, its state and the model repository on the shared volume at /data', () => {
    for (const [k, objects] of rendered) {
      const trainer = find(objects, 'Deployment', 'trainer');
      assert.equal(get(trainer, 'spec.replicas'), 1, k);
      assert.equal(get(trainer, 'spec.strategy.type'), 'Recreate', k);
      const config = find(objects, 'ConfigMap', 'ch8-config');
      assert.equal(get(config, 'data.CH8_HOME'), '/data', `${k}: models in /data/models, runs in /data/trainer`);
      // The trainer writes the model repository the gateway reads: the same claim, mounted at CH8_HOME in both.
      for (const [name, readOnly] of [
        ['trainer', false],
        ['gateway', true],
      ] as const) {
        const d = find(objects, 'Deployment', name);
        const volume = (podSpec(d)['volumes'] as Json[]).find(
          (v) => get(v, 'persistentVolumeClaim.claimName') === 'ch8-data',
        );
        const mount = (containers(d)[0]?.['volumeMounts'] as Json[]).find(
          (m) => get(m, 'name') === get(volume, 'name'),
        );
        assert.equal(get(mount, 'mountPath'), '/data', `${k} ${name}`);
        assert.equal(get(mount, 'readOnly') === true, readOnly, `${k} ${name} read-only: ${readOnly}`);
        assert.equal(
          envOf(containers(d)[0] as JsonObject)['CH8_HOME'],
          undefined,
          `${k} ${name}: CH8_HOME from the config`,
        );
      }
    }
    for (const k of ['base', 'overlays/gpu'])
      assert.deepEqual(
        get(find(objectsOf(k), 'PersistentVolumeClaim', 'ch8-data'), 'spec.accessModes'),
        ['ReadWriteMany'],
        k,
      );
  });

  test('the gateway: autoscaled (autoscaling/v2), ready only with a model loaded, no replica count of its own', () => {
    for (const [k, objects] of rendered) {
      const gateway = find(objects, 'Deployment', 'gateway');
      assert.equal(get(gateway, 'spec.replicas'), undefined, `${k}: the autoscaler owns the count`);
      assert.equal(get(containers(gateway)[0], 'readinessProbe.grpc.service'), 'inference.GRPCInferenceService', k);
      const hpa = find(objects, 'HorizontalPodAutoscaler', 'gateway');
      assert.equal(hpa.apiVersion, 'autoscaling/v2', k);
      assert.deepEqual(
        get(hpa, 'spec.scaleTargetRef'),
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'gateway' },
        k,
      );
      const min = get(hpa, 'spec.minReplicas') as number;
      assert.ok(min >= 1 && min <= (get(hpa, 'spec.maxReplicas') as number), k);
    }
  });
});

describe('overlays', () => {
  test('gpu: the trainer on a GPU node with nvidia.com/gpu and CH8_BACKEND=webgpu; everything else as in the base', () => {
    const gpu = objectsOf('overlays/gpu');
    const trainer = find(gpu, 'Deployment', 'trainer');
    assert.equal((podSpec(trainer)['nodeSelector'] as JsonObject)['nvidia.com/gpu.present'], 'true');
    const container = containers(trainer)[0] as JsonObject;
    assert.equal((get(container, 'resources.limits') as JsonObject)['nvidia.com/gpu'], 1);
    assert.equal(envOf(container)['CH8_BACKEND'], 'webgpu');
    assert.match(
      envOf(container)['NVIDIA_DRIVER_CAPABILITIES'] ?? '',
      /graphics/,
      'Vulkan needs the graphics capability',
    );
    const base = objectsOf('base');
    assert.equal(envOf(containers(find(base, 'Deployment', 'trainer'))[0] as JsonObject)['CH8_BACKEND'], 'auto');
    for (const o of gpu) {
      if (o.kind === 'Deployment' && o.metadata.name === 'trainer') continue;
      assert.deepEqual(o, find(base, o.kind, o.metadata.name), `${objectId(o)} is the base's`);
    }
  });

  test('dev: one namespace for everything, local images tagged dev, a ReadWriteOnce volume', () => {
    const dev = objectsOf('overlays/dev');
    find(dev, 'Namespace', 'ch8-dev');
    for (const o of dev) if (o.kind !== 'Namespace') assert.equal(o.metadata['namespace'], 'ch8-dev', objectId(o));
    for (const d of dev.filter((o) => o.kind === 'Deployment'))
      assert.equal(containers(d)[0]?.['image'], `ch8-${d.metadata.name}:dev`);
    assert.deepEqual(get(find(dev, 'PersistentVolumeClaim', 'ch8-data'), 'spec.accessModes'), ['ReadWriteOnce']);
  });
});

describe('the validator', () => {
  const good: K8sObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x' },
    spec: {
      selector: { matchLabels: { a: 'b' } },
      template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    },
  };
  const broken = (edit: (o: JsonObject) => void): K8sObject => {
    const o = structuredClone(good);
    edit(o);
    return o;
  };
  const container = (o: JsonObject): JsonObject =>
    (get(o, 'spec.template.spec.containers') as JsonObject[])[0] as JsonObject;

  test('accepts a valid object and rejects broken ones, naming what is wrong', async () => {
    assert.deepEqual(await validateObjects([good]), []);
    const cases: Array<[K8sObject, string, RegExp]> = [
      [broken((o) => ((o['spec'] as JsonObject)['replicas'] = 'two')), 'spec.replicas', /integer/],
      [broken((o) => (container(o)['image'] = 1)), 'spec.template.spec.containers[0].image', /string/],
      [broken((o) => delete container(o)['name']), 'spec.template.spec.containers[0]', /name/],
      [
        broken((o) => (container(o)['readinesProbe'] = { grpc: { port: 1 } })),
        'spec.template.spec.containers[0].readinesProbe',
        /unknown field/,
      ],
      [
        broken((o) => (container(o)['readinessProbe'] = { grpc: { port: 1, servce: 'x' } })),
        'spec.template.spec.containers[0].readinessProbe.grpc.servce',
        /unknown field/,
      ],
      [
        {
          ...good,
          apiVersion: 'autoscaling/v2',
          kind: 'HorizontalPodAutoscaler',
          spec: { maxReplicas: 2, scaleTargetRef: { kind: 'Deployment' } },
        },
        'spec.scaleTargetRef',
        /name/,
      ],
      [{ ...good, kind: 'Deploymnt' }, '', /unknown kind/],
    ];
    for (const [object, path, message] of cases) {
      const problems = await validateObjects([object]);
      assert.ok(
        problems.some((p) => p.path === path && message.test(p.message)),
        `${path} ${message}: got\n${formatProblems(problems)}`,
      );
    }
  });

  test('a broken manifest on disk fails the check', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ch8-k8s-'));
    try {
      await cp(K8S, dir, { recursive: true });
      const file = join(dir, 'base', 'embedding.yaml');
      const docs = parseYamlDocuments(await readFile(file, 'utf8'), file) as JsonObject[];
      const deployment = docs[0] as K8sObject;
      (get(deployment, 'spec.template.spec.containers') as JsonObject[])[0]!['livenessProbe'] = {
        grpc: { port: 'grpc' },
      };
      await writeFile(file, docs.map((d) => JSON.stringify(d)).join('\n---\n'));
      const problems = await validateObjects(await buildKustomization(join(dir, 'overlays', 'gpu')));
      assert.ok(
        problems.some((p) => p.object === 'Deployment/embedding' && p.path.endsWith('livenessProbe.grpc.port')),
        formatProblems(problems),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

test(
  'the renderer prints what kubectl kustomize prints',
  { skip: hasKubectl() ? false : 'kubectl is not installed' },
  async () => {
    for (const k of await kustomizations()) {
      const theirs = parseYamlDocuments(
        execFileSync('kubectl', ['kustomize', join(K8S, k)], { encoding: 'utf8', timeout: 30_000 }),
        k,
      );
      assert.deepEqual(objectsOf(k), theirs, k);
    }
  },
);
