/**
 * The container images of infra/docker, checked without a container engine: one multi-stage Dockerfile per
 * service, every COPY source present in the workspace and not left out of the build context by .dockerignore, the
 * final stage running as an unprivileged numeric user, the tools pinned to the workspace's versions, and the ports
 * and image names the Kubernetes manifests use.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import {
  argDefault,
  isIgnored,
  parseCopy,
  parseDockerfile,
  parseDockerignore,
  type Dockerfile,
  type Instruction,
} from './dockerfile.ts';
import { buildKustomization } from './kustomize.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCKER = join(ROOT, 'infra', 'docker');

interface Image {
  service: string;
  file: string;
  dockerfile: Dockerfile;
}

let services: string[] = [];
const images: Image[] = [];
let rootPackage: { packageManager: string; devDependencies: Record<string, string> };
let ignoreRules: ReturnType<typeof parseDockerignore>;

before(async () => {
  services = (await readdir(join(ROOT, 'services'), { withFileTypes: true }))
    .filter((d) => d.isDirectory() && existsSync(join(ROOT, 'services', d.name, 'package.json')))
    .map((d) => d.name)
    .sort();
  for (const service of services) {
    const file = join(DOCKER, `${service}.Dockerfile`);
    images.push({ service, file, dockerfile: parseDockerfile(await readFile(file, 'utf8'), file) });
  }
  rootPackage = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
  ignoreRules = parseDockerignore(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
});

function finalStage(image: Image) {
  const stage = image.dockerfile.stages[image.dockerfile.stages.length - 1];
  assert.ok(stage, `${image.file} has a FROM`);
  return stage;
}

function all(image: Image, keyword: string): Instruction[] {
  return finalStage(image).instructions.filter((i) => i.keyword === keyword);
}

test('one Dockerfile per service, and no other', async () => {
  const files = (await readdir(DOCKER)).filter((f) => f.endsWith('.Dockerfile')).sort();
  assert.deepEqual(files, services.map((s) => `${s}.Dockerfile`).sort());
  assert.deepEqual(services, ['dataset', 'embedding', 'gateway', 'trainer']);
  assert.equal(existsSync(join(ROOT, 'infra', 'Dockerfile')), false, 'the single image is gone');
});

describe('every image', () => {
  test('is multi-stage: the final stage copies only what the build stage produced', () => {
    for (const image of images) {
      const { stages } = image.dockerfile;
      assert.ok(stages.length >= 2, `${image.file} has a build stage`);
      const names = stages.map((s) => s.name).filter((n) => n !== undefined);
      for (const [i, stage] of stages.entries()) {
        for (const ins of stage.instructions.filter((x) => x.keyword === 'COPY' || x.keyword === 'ADD')) {
          assert.equal(ins.keyword, 'COPY', `${image.file}:${ins.line} uses COPY`);
          const copy = parseCopy(ins, image.file);
          if (copy.from !== undefined) {
            assert.ok(names.slice(0, i).includes(copy.from), `${image.file}:${ins.line} copies from an earlier stage`);
          } else {
            assert.ok(
              i < stages.length - 1,
              `${image.file}:${ins.line}: the final stage copies nothing from the context`,
            );
          }
        }
      }
    }
  });

  test('copies only sources that exist in the workspace and are part of the build context', () => {
    for (const image of images) {
      for (const stage of image.dockerfile.stages) {
        for (const ins of stage.instructions.filter((x) => x.keyword === 'COPY')) {
          const copy = parseCopy(ins, image.file);
          if (copy.from !== undefined) continue;
          for (const source of copy.sources) {
            assert.ok(!/[*?[]/.test(source), `${image.file}:${ins.line}: ${source} is a plain path`);
            assert.ok(existsSync(join(ROOT, source)), `${image.file}:${ins.line}: ${source} exists`);
            assert.equal(
              isIgnored(ignoreRules, source),
              false,
              `${image.file}:${ins.line}: .dockerignore keeps ${source}`,
            );
          }
        }
      }
    }
  });

  test('runs as an unprivileged numeric user', () => {
    for (const image of images) {
      const users = all(image, 'USER');
      const last = users[users.length - 1];
      assert.ok(last, `${image.file}: the final stage sets USER`);
      const m = /^(\d+)(?::(\d+))?$/.exec(last.args);
      assert.ok(m, `${image.file}: USER is numeric (Kubernetes' runAsNonRoot can check it), got ${last.args}`);
      assert.notEqual(Number(m[1]), 0, `${image.file}: not root`);
      if (m[2] !== undefined) assert.notEqual(Number(m[2]), 0, `${image.file}: not the root group`);
      // Nothing runs after USER that would need root, and the entry point comes after it.
      const instructions = finalStage(image).instructions;
      const at = instructions.indexOf(last);
      assert.ok(
        instructions.slice(at).every((i) => i.keyword !== 'RUN'),
        `${image.file}: no RUN after USER`,
      );
    }
  });

  test('installs its own service, with the tools at the workspace versions', async () => {
    const tsx = rootPackage.devDependencies['tsx'];
    const pnpm = /^pnpm@(.+)$/.exec(rootPackage.packageManager)?.[1];
    for (const image of images) {
      const build = image.dockerfile.stages[0];
      assert.ok(build);
      assert.equal(argDefault(build.instructions, 'TSX_VERSION'), tsx, `${image.file}: tsx as in package.json`);
      assert.equal(argDefault(build.instructions, 'PNPM_VERSION'), pnpm, `${image.file}: pnpm as in packageManager`);
      const pkg = JSON.parse(await readFile(join(ROOT, 'services', image.service, 'package.json'), 'utf8')) as {
        name: string;
      };
      const deploy = build.instructions.filter((i) => i.keyword === 'RUN' && / deploy /.test(i.args));
      assert.equal(deploy.length, 1, `${image.file}: one pnpm deploy`);
      assert.match(deploy[0]!.args, new RegExp(`--filter ${pkg.name.replace('/', '\\/')} --prod `), image.file);
      const entry = JSON.parse(all(image, 'ENTRYPOINT')[0]?.args ?? 'null') as string[];
      assert.deepEqual(entry, [
        'node',
        '--import',
        'file:///opt/tsx/lib/node_modules/tsx/dist/loader.mjs',
        'src/main.ts',
      ]);
      assert.ok(existsSync(join(ROOT, 'services', image.service, 'src', 'main.ts')));
      // The loader the entry point names is where `npm install -g --prefix /opt/tsx` puts tsx's main export.
      const tsxPackage = JSON.parse(await readFile(join(ROOT, 'node_modules', 'tsx', 'package.json'), 'utf8')) as {
        exports: Record<string, unknown>;
      };
      assert.equal(tsxPackage.exports['.'], './dist/loader.mjs');
    }
  });

  test('listens where the manifests expect it and is the image they name', async () => {
    const objects = await buildKustomization(join(ROOT, 'infra', 'k8s', 'base'));
    for (const image of images) {
      const env = all(image, 'ENV')
        .map((i) => i.args)
        .join(' ');
      const listen = new RegExp(`CH8_${image.service.toUpperCase()}_ADDR=0\\.0\\.0\\.0:(\\d+)`).exec(env);
      assert.ok(listen, `${image.file} listens on all interfaces`);
      const port = Number(listen[1]);
      assert.ok(
        all(image, 'EXPOSE').some((i) => i.args.split(/\s+/).includes(String(port))),
        `${image.file} exposes ${port}`,
      );
      const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === image.service);
      const container = (deployment?.['spec'] as { template: { spec: { containers: Array<Record<string, unknown>> } } })
        .template.spec.containers[0];
      assert.equal(container?.['image'], `ch8-${image.service}`, `docker build -t ch8-${image.service}`);
      assert.deepEqual((container?.['ports'] as Array<{ containerPort: number }>)[0]?.containerPort, port, image.file);
      assert.match(env, /CH8_HOME=\/data/, `${image.file}: the state home is the volume`);
      const metrics = new RegExp(`CH8_${image.service.toUpperCase()}_METRICS_ADDR=0\\.0\\.0\\.0:(\\d+)`).exec(env);
      assert.ok(metrics, `${image.file} serves its metrics on all interfaces`);
      const metricsPort = (container?.['ports'] as Array<{ name: string; containerPort: number }>).find(
        (p) => p.name === 'metrics',
      )?.containerPort;
      assert.equal(Number(metrics[1]), metricsPort, image.file);
      assert.ok(
        all(image, 'EXPOSE').some((i) => i.args.split(/\s+/).includes(metrics[1] as string)),
        image.file,
      );
    }
  });
});

test('the trainer image carries the Vulkan loader and asks the container toolkit for the graphics capability', () => {
  const trainer = images.find((i) => i.service === 'trainer');
  assert.ok(trainer);
  assert.ok(all(trainer, 'RUN').some((i) => /apt-get install .*libvulkan1/.test(i.args)));
  assert.match(
    all(trainer, 'ENV')
      .map((i) => i.args)
      .join(' '),
    /NVIDIA_DRIVER_CAPABILITIES=\S*graphics/,
  );
});

test('.dockerignore keeps installed, built and cached files and the tests out of the context', () => {
  for (const path of [
    'node_modules',
    'packages/models/node_modules/x',
    '.cache/dev',
    'services/embedding/.cache/e',
    '.git',
    'packages/models/src/model.test.ts',
    'bench/x.ts',
  ])
    assert.equal(isIgnored(ignoreRules, path), true, path);
  for (const path of [
    'pnpm-lock.yaml',
    'package.json',
    'packages/models/src/model.ts',
    'services/gateway/src/main.ts',
    'proto',
  ])
    assert.equal(isIgnored(ignoreRules, path), false, path);
});

describe('dockerfile reading', () => {
  test('instructions, continuations, stages, COPY forms', () => {
    const d = parseDockerfile(
      '# syntax=docker/dockerfile:1\nARG BASE=node:20\nFROM ${BASE} AS build\nRUN a \\\n  # note\n  && b\nCOPY --chown=1:1 a b /x/\nFROM scratch\nCOPY --from=build ["/out", "/app"]\nUSER 1000\n',
    );
    assert.deepEqual(
      d.globalArgs.map((i) => i.args),
      ['BASE=node:20'],
    );
    assert.deepEqual(
      d.stages.map((s) => [s.from, s.name]),
      [
        ['${BASE}', 'build'],
        ['scratch', undefined],
      ],
    );
    assert.deepEqual(
      d.stages[0]?.instructions.map((i) => [i.keyword, i.args, i.line]),
      [
        ['RUN', 'a && b', 4],
        ['COPY', '--chown=1:1 a b /x/', 7],
      ],
    );
    assert.deepEqual(parseCopy(d.stages[0]!.instructions[1]!), {
      flags: { chown: '1:1' },
      sources: ['a', 'b'],
      destination: '/x/',
    });
    assert.deepEqual(parseCopy(d.stages[1]!.instructions[0]!), {
      from: 'build',
      flags: { from: 'build' },
      sources: ['/out'],
      destination: '/app',
    });
  });

  test('.dockerignore: globs, ** at any depth, parent folders, exceptions (the last match wins)', () => {
    const rules = parseDockerignore('# c\n/dist\n**/*.log\ndocs\n!docs/keep.md\n*.md\n');
    assert.equal(isIgnored(rules, 'dist/a.js'), true);
    assert.equal(isIgnored(rules, 'x/dist/a.js'), false);
    assert.equal(isIgnored(rules, 'a.log'), true);
    assert.equal(isIgnored(rules, 'a/b/c.log'), true);
    assert.equal(isIgnored(rules, 'docs/x.txt'), true);
    assert.equal(isIgnored(rules, 'docs/keep.md'), false);
    assert.equal(isIgnored(rules, 'README.md'), true);
    assert.equal(isIgnored(rules, 'src/README.md'), false);
  });
});
