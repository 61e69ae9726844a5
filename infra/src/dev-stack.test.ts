/**
 * The local stack (`pnpm dev` = `turbo run dev`): every service's dev script runs infra/scripts/dev-service.sh,
 * which gives all four one state home and the same data roots, resolved from the repository root whatever folder
 * turbo runs it in, and watches the workspace packages each service runs on. Checked through the script's
 * --print-env mode, which prints what the service would start with.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const SCRIPT = join(ROOT, 'infra', 'scripts', 'dev-service.sh');
const SERVICES = ['embedding', 'dataset', 'trainer', 'gateway'];

let home: string;
before(async () => {
  home = await mkdtemp(join(tmpdir(), 'ch8-dev-home-'));
});
after(async () => {
  await rm(home, { recursive: true, force: true });
});

const printed = new Map<string, { settings: Record<string, string>; args: string[] }>();

/** What dev-service.sh would start `service` with: the CH8_* lines as a map, and tsx watch's arguments. */
function printEnv(service: string, env: Record<string, string>): { settings: Record<string, string>; args: string[] } {
  const key = JSON.stringify([service, env]);
  const known = printed.get(key);
  if (known !== undefined) return known;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CH8_'))) as Record<
    string,
    string
  >;
  const out = execFileSync('sh', [SCRIPT, '--print-env'], {
    cwd: join(ROOT, 'services', service),
    env: { ...clean, ...env },
    encoding: 'utf8',
  });
  const settings: Record<string, string> = {};
  const args: string[] = [];
  for (const line of out.split('\n').filter((l) => l !== '')) {
    const m = /^(CH8_[A-Z_]+)=(.*)$/.exec(line);
    if (m !== null) settings[m[1] as string] = m[2] as string;
    else args.push(line);
  }
  printed.set(key, { settings, args });
  return { settings, args };
}

test("every service's dev script is the launcher, and turbo passes CH8_* settings through to it", async () => {
  for (const s of SERVICES) {
    const pkg = JSON.parse(await readFile(join(ROOT, 'services', s, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    assert.equal(pkg.scripts['dev'], 'sh ../../infra/scripts/dev-service.sh', s);
  }
  const turbo = JSON.parse(await readFile(join(ROOT, 'turbo.json'), 'utf8')) as {
    tasks: Record<string, { passThroughEnv?: string[]; persistent?: boolean }>;
  };
  assert.ok(turbo.tasks['dev']?.passThroughEnv?.includes('CH8_*'), 'strict env mode would drop CH8_* otherwise');
  assert.equal(turbo.tasks['dev']?.persistent, true);
});

test('one state home and the same data roots for all four services', () => {
  const shared = join(ROOT, '..', 'shared', 'data');
  const seen = SERVICES.map((s) => printEnv(s, { CH8_HOME: home }).settings);
  for (const settings of seen) {
    assert.equal(settings['CH8_HOME'], home);
    const roots = (settings['CH8_DATA_ROOTS'] ?? '').split(',');
    assert.equal(roots[0], join(home, 'data'), 'a data folder in the home');
    if (existsSync(shared)) assert.equal(roots.length, 2, 'and ../shared/data beside the repository');
    else assert.equal(roots.length, 1);
  }
  assert.ok(existsSync(join(home, 'data')), 'the default data folder is created');
});

test('the default home is <repo>/.cache/dev, and relative settings are taken from the repository root', () => {
  const { settings } = printEnv('gateway', { CH8_DATA_ROOTS: `${home},rel/data,,/abs/x` });
  assert.equal(settings['CH8_HOME'], join(ROOT, '.cache', 'dev'));
  assert.equal(settings['CH8_DATA_ROOTS'], `${home},${join(ROOT, 'rel', 'data')},/abs/x`);
  const relative = printEnv('trainer', {
    CH8_HOME: 'some/home',
    CH8_DATA_ROOTS: home,
    CH8_MODEL_REPOSITORY: 'repo',
    CH8_TRAINER_STATE_DIR: '/abs/state',
  }).settings;
  assert.equal(relative['CH8_HOME'], join(ROOT, 'some', 'home'));
  assert.equal(relative['CH8_MODEL_REPOSITORY'], join(ROOT, 'repo'));
  assert.equal(relative['CH8_TRAINER_STATE_DIR'], '/abs/state');
});

test('each service watches the workspace packages it runs on, not the others, and never the tests', () => {
  const watched = (s: string) => {
    const { args } = printEnv(s, { CH8_HOME: home });
    assert.deepEqual(args.slice(0, 3), ['--clear-screen=false', '--exclude', `${ROOT}/**/*.test.ts`]);
    const out: string[] = [];
    args.forEach((a, i) => {
      if (a === '--include')
        out.push((args[i + 1] as string).replace(`${ROOT}/packages/`, '').replace('/src/**/*.ts', ''));
    });
    return out;
  };
  for (const s of SERVICES) {
    const list = watched(s);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'services', s, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const [name, spec] of Object.entries(pkg.dependencies)) {
      if (spec.startsWith('workspace:')) assert.ok(list.includes(name.replace('@ch8/', '')), `${s} watches ${name}`);
    }
    assert.ok(!list.includes('cli'), `${s} does not restart for the CLI`);
    assert.deepEqual(list, [...list].sort());
  }
  const embedding = watched('embedding');
  for (const p of ['models', 'training', 'backend', 'webgpu'])
    assert.ok(!embedding.includes(p), `embedding runs no ${p}`);
  const trainer = watched('trainer');
  // Not direct dependencies of the trainer service: what its worker threads run through @ch8/training.
  for (const p of ['models', 'backend', 'webgpu', 'batching', 'datasets', 'tokenizer'])
    assert.ok(trainer.includes(p), `the trainer's worker threads run ${p}`);
});

test('the launcher refuses to run outside a service folder', () => {
  assert.throws(() => execFileSync('sh', [SCRIPT], { cwd: ROOT, stdio: 'pipe' }), /run me from a service folder/);
});
