/**
 * `pnpm --filter @ch8/infra render k8s/overlays/gpu`: prints what `kubectl kustomize` would (this package's renderer,
 * see kustomize.ts) and exits non-zero when an object does not validate against the Kubernetes API schemas.
 */
import process from 'node:process';
import { buildKustomization, toYaml } from './kustomize.ts';
import { formatProblems, validateObjects } from './validate.ts';

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  process.stderr.write('usage: render.ts DIR...   (a directory holding a kustomization.yaml)\n');
  process.exit(2);
}
let failed = false;
for (const dir of dirs) {
  const objects = await buildKustomization(dir);
  process.stdout.write(toYaml(objects));
  const problems = await validateObjects(objects);
  if (problems.length > 0) {
    failed = true;
    process.stderr.write(`${dir}: ${problems.length} problem(s)\n${formatProblems(problems)}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
