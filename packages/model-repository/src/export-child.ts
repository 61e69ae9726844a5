/**
 * Test helper run as a separate process by repository.test.ts (not exported from the package):
 * `node --import tsx src/export-child.ts <job.json>` runs `count` exports of one model at once and prints the
 * versions they got as JSON; with `crash: true` the process exits inside beforeRename, as a killed trainer would.
 * With `barrier`, it writes `<barrier>/ready-<pid>` and waits for `<barrier>/go` first, so the processes' exports
 * really run at the same time.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ModelConfig } from '@ch8/models/config';
import type { ManifestInput } from './manifest.ts';
import { exportModel } from './repository.ts';

interface Job {
  root: string;
  name: string;
  count: number;
  crash?: boolean;
  barrier?: string;
  config: ModelConfig;
  weights: { name: string; shape: number[]; values: number[] }[];
  input: ManifestInput;
}

const job = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as Job;
const weights = job.weights.map((w) => ({ name: w.name, shape: w.shape, values: Float32Array.from(w.values) }));
if (job.barrier !== undefined) {
  await writeFile(join(job.barrier, `ready-${process.pid}`), '');
  while (!existsSync(join(job.barrier, 'go'))) await sleep(2);
}
const hooks = job.crash ? { beforeRename: () => process.exit(3) } : {};
const done = await Promise.all(
  Array.from({ length: job.count }, () =>
    exportModel(job.root, job.name, { config: job.config, weights }, job.input, { hooks }),
  ),
);
process.stdout.write(JSON.stringify(done.map((d) => d.version)) + '\n');
