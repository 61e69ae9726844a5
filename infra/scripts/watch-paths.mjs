// Prints, one per line, the source folders of the workspace packages a service runs on: its own "dependencies" with
// a workspace: specifier, followed transitively (devDependencies are the tests' and are left out). dev-service.sh
// watches them, so the service restarts when code it runs changes, its worker threads' code included, and not when
// an unrelated package does.
//
// usage: node infra/scripts/watch-paths.mjs <repository root> <service folder>
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const [root, start] = process.argv.slice(2).map((p) => resolve(p));
if (root === undefined || start === undefined) {
  process.stderr.write('usage: watch-paths.mjs <repository root> <service folder>\n');
  process.exit(2);
}
const readManifest = (dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

const folders = new Map();
for (const group of ['packages', 'services']) {
  for (const entry of readdirSync(join(root, group), { withFileTypes: true })) {
    const dir = join(root, group, entry.name);
    if (entry.isDirectory() && existsSync(join(dir, 'package.json'))) folders.set(readManifest(dir).name, dir);
  }
}

const seen = new Set([start]);
const pending = [start];
while (pending.length > 0) {
  const dir = pending.pop();
  for (const [name, spec] of Object.entries(readManifest(dir).dependencies ?? {})) {
    const target = folders.get(name);
    if (!String(spec).startsWith('workspace:') || target === undefined || seen.has(target)) continue;
    seen.add(target);
    pending.push(target);
  }
}
seen.delete(start);
for (const dir of [...seen].sort()) process.stdout.write(`${join(dir, 'src')}\n`);
