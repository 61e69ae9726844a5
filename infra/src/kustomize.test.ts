import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { buildKustomization, parseImage, parseYamlDocuments, toYaml } from './kustomize.ts';
import { mergeKeyOf, strategicMerge, type JsonObject } from './strategic-merge.ts';

describe('strategicMerge', () => {
  test('maps merge key by key and null deletes', () => {
    const base = { a: 1, b: { c: 2, d: 3 }, e: 'x' };
    assert.deepEqual(strategicMerge(base, { b: { d: 4, f: 5 }, e: null }), { a: 1, b: { c: 2, d: 4, f: 5 } });
    assert.deepEqual(base, { a: 1, b: { c: 2, d: 3 }, e: 'x' }, 'the base is not modified');
  });

  test('containers merge by name and env by name: patch items first, then the rest (as kustomize orders them)', () => {
    const base: JsonObject = {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'a',
                image: 'i',
                env: [
                  { name: 'A', value: '1' },
                  { name: 'B', value: '2' },
                  { name: 'C', value: '3' },
                ],
              },
              { name: 'b', image: 'x' },
            ],
          },
        },
      },
    };
    const patch: JsonObject = {
      spec: {
        template: {
          spec: {
            containers: [
              { name: 'b', image: 'y' },
              { name: 'z', image: 'new', args: null },
              {
                name: 'a',
                env: [
                  { name: 'C', value: '30' },
                  { name: 'D', value: '4' },
                  { name: 'A', value: null },
                ],
              },
            ],
          },
        },
      },
    };
    // The expected value is what `kubectl kustomize` (kustomize v5.5.0) printed for this base and patch.
    assert.deepEqual(strategicMerge(base, patch), {
      spec: {
        template: {
          spec: {
            containers: [
              { name: 'b', image: 'y' },
              { name: 'z', image: 'new' },
              {
                name: 'a',
                image: 'i',
                env: [{ name: 'C', value: '30' }, { name: 'D', value: '4' }, { name: 'A' }, { name: 'B', value: '2' }],
              },
            ],
          },
        },
      },
    });
  });

  test('lists without a merge key are replaced whole', () => {
    const base = { spec: { accessModes: ['ReadWriteMany'], template: { spec: { tolerations: [{ key: 'a' }] } } } };
    const patch = { spec: { accessModes: ['ReadWriteOnce'], template: { spec: { tolerations: [{ key: 'b' }] } } } };
    assert.deepEqual(strategicMerge(base, patch), patch);
  });

  test('merge keys follow the Kubernetes API', () => {
    assert.equal(mergeKeyOf(['spec', 'template', 'spec', 'containers']), 'name');
    assert.equal(mergeKeyOf(['spec', 'template', 'spec', 'containers', 'ports']), 'containerPort');
    assert.equal(mergeKeyOf(['spec', 'template', 'spec', 'containers', 'volumeMounts']), 'mountPath');
    assert.equal(mergeKeyOf(['spec', 'template', 'spec', 'volumes']), 'name');
    assert.equal(mergeKeyOf(['spec', 'ports']), 'port');
    assert.equal(mergeKeyOf(['spec', 'template', 'spec', 'tolerations']), undefined);
    assert.equal(mergeKeyOf(['spec', 'template', 'spec', 'containers', 'args']), undefined);
  });

  test('patch directives are refused, not ignored', () => {
    assert.throws(() => strategicMerge({ spec: {} }, { spec: { $patch: 'replace' } }), isInvalidInput);
  });
});

test('parseImage', () => {
  assert.deepEqual(parseImage('ch8-gateway'), { name: 'ch8-gateway' });
  assert.deepEqual(parseImage('ch8-gateway:dev'), { name: 'ch8-gateway', tag: 'dev' });
  assert.deepEqual(parseImage('reg:5000/ns/gw'), { name: 'reg:5000/ns/gw' });
  assert.deepEqual(parseImage('reg:5000/ns/gw:1@sha256:ab'), { name: 'reg:5000/ns/gw', tag: '1', digest: 'sha256:ab' });
});

describe('buildKustomization', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ch8-kustomize-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function files(root: string, entries: Record<string, string>): Promise<string> {
    for (const [name, text] of Object.entries(entries)) {
      await mkdir(join(root, name, '..'), { recursive: true });
      await writeFile(join(root, name), text);
    }
    return root;
  }

  const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, labels: { app: web } }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - { name: web, image: 'web:1', env: [{ name: A, value: '1' }] }
      initContainers:
        - { name: init, image: 'other:2' }
`;

  test('an overlay: resources from a base, patches, namespace, labels with templates, images, kustomize order', async () => {
    const root = await files(join(dir, 'overlay'), {
      'base/kustomization.yaml': 'resources: [app.yaml, config.yaml]\n',
      'base/app.yaml': `${deployment}---\napiVersion: v1\nkind: Service\nmetadata: { name: web }\nspec: { ports: [{ port: 80 }] }\n`,
      'base/config.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { A: "1" }\n',
      'prod/kustomization.yaml': `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod
resources: [ns.yaml, ../base]
labels:
  - pairs: { team: x }
    includeTemplates: true
images:
  - { name: web, newName: reg.example/web, newTag: '2' }
  - { name: other, digest: 'sha256:00' }
patches:
  - path: patch.yaml
  - patch: |
      apiVersion: v1
      kind: ConfigMap
      metadata: { name: cfg }
      data: { B: "2" }
`,
      'prod/ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: { name: prod }\n',
      'prod/patch.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  replicas: 3
  template:
    spec:
      containers:
        - { name: web, env: [{ name: B, value: '2' }] }
`,
    });
    const objects = await buildKustomization(join(root, 'prod'));
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata['namespace'] ?? ''}/${o.metadata.name}`),
      ['Namespace//prod', 'ConfigMap/prod/cfg', 'Service/prod/web', 'Deployment/prod/web'],
    );
    const [ns, cm, , dep] = objects;
    assert.deepEqual(ns?.metadata, { name: 'prod', labels: { team: 'x' } }, 'a Namespace gets no namespace');
    assert.deepEqual(cm?.['data'], { A: '1', B: '2' });
    assert.deepEqual(dep?.['spec'], {
      replicas: 3,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web', team: 'x' } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'reg.example/web:2',
              env: [
                { name: 'B', value: '2' },
                { name: 'A', value: '1' },
              ],
            },
          ],
          initContainers: [{ name: 'init', image: 'other@sha256:00' }],
        },
      },
    });
    assert.deepEqual(dep?.metadata.labels, { app: 'web', team: 'x' });
    // The YAML stream reads back to the same objects.
    assert.deepEqual(parseYamlDocuments(toYaml(objects), 'out'), objects);
  });

  test('anything the renderer does not implement is refused, naming the field', async () => {
    const cases: Record<string, string> = {
      generator: 'resources: [a.yaml]\nconfigMapGenerator: [{ name: x, literals: [A=1] }]\n',
      prefix: 'resources: [a.yaml]\nnamePrefix: x-\n',
      selectors: 'resources: [a.yaml]\nlabels: [{ pairs: { a: b }, includeSelectors: true }]\n',
      target: 'resources: [a.yaml]\npatches: [{ path: a.yaml, target: { kind: Deployment } }]\n',
      remote: 'resources: [https://example.com/x.yaml]\n',
    };
    for (const [name, kustomization] of Object.entries(cases)) {
      const root = await files(join(dir, 'refused', name), {
        'kustomization.yaml': kustomization,
        'a.yaml': deployment,
      });
      await assert.rejects(buildKustomization(root), (e) => isInvalidInput(e) && /not supported/.test(e.message), name);
    }
  });

  test('a patch without a target, a duplicate object and a missing resource fail', async () => {
    const nomatch = await files(join(dir, 'nomatch'), {
      'kustomization.yaml': 'resources: [a.yaml]\npatches: [{ path: p.yaml }]\n',
      'a.yaml': deployment,
      'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: nope }\nspec: { replicas: 2 }\n',
    });
    await assert.rejects(buildKustomization(nomatch), /matches 0 objects/);
    const twice = await files(join(dir, 'twice'), {
      'kustomization.yaml': 'resources: [a.yaml, b.yaml]\n',
      'a.yaml': deployment,
      'b.yaml': deployment,
    });
    await assert.rejects(buildKustomization(twice), /defined twice/);
    const missing = await files(join(dir, 'missing'), { 'kustomization.yaml': 'resources: [gone.yaml]\n' });
    await assert.rejects(buildKustomization(missing), /no such file/);
    const bad = await files(join(dir, 'bad'), { 'kustomization.yaml': 'resources: [a.yaml]\n', 'a.yaml': 'kind: [\n' });
    await assert.rejects(buildKustomization(bad), (e) => isInvalidInput(e) && /YAML/.test(e.message));
  });
});
