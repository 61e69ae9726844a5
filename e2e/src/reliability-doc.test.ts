/**
 * docs/reliability.md cannot drift from the tests: every row of its tables names a test file that exists and a test
 * title that file contains, every status it quotes appears in that file, and every message fragment it quotes appears
 * in that file (regular-expression escapes aside); a status or message cell may name another file after `←` (the
 * script a test runs, the source that words a message the test does not match). Each service has a section with
 * rows. Planted faults show that the check finds each kind of drift.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '@ch8/cli/launch';

const DOC = join(ROOT, 'docs', 'reliability.md');
/** The sections the table must have, by the start of their heading (lower case). */
const SECTIONS = ['embedding', 'dataset', 'trainer', 'gateway', 'cli'] as const;

export interface Row {
  section: string;
  line: number;
  what: string;
  statuses: string[];
  /** Where the statuses are looked up: the test file unless the row names another after `←`. */
  statusesIn: string | undefined;
  fragments: string[];
  /** Where the fragments are looked up: the test file unless the row names another after `←`. */
  fragmentsIn: string | undefined;
  file: string;
  title: string;
}

const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/** Cells of a Markdown table line (`\|` stands for a `|` inside a cell). */
function cells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

/** The rows of every table, each with the section (## heading) it is in; malformed rows are problems. */
export function parseTable(markdown: string): { rows: Row[]; problems: string[] } {
  const rows: Row[] = [];
  const problems: string[] = [];
  let section = '';
  markdown.split('\n').forEach((text, i) => {
    const line = i + 1;
    const heading = /^##\s+(.*)$/.exec(text);
    if (heading) section = heading[1]!.trim();
    if (!text.startsWith('|')) return;
    const c = cells(text);
    if (c.every((x) => /^:?-+:?$/.test(x)) || c[1] === 'Status') return; // separator, header
    if (c.length !== 5) return void problems.push(`line ${line}: ${c.length} cells, expected 5`);
    const [what, status, message, fileCell, title] = c as [string, string, string, string, string];
    const [left, right] = message.split('←');
    const [statusLeft, statusRight] = status.split('←');
    const file = ticked(fileCell)[0];
    const statuses = ticked(statusLeft!);
    if (file === undefined) problems.push(`line ${line}: no test file in backticks`);
    if (statuses.length === 0) problems.push(`line ${line}: no status in backticks`);
    if (title === '') problems.push(`line ${line}: no test title`);
    rows.push({
      section,
      line,
      what,
      statuses,
      statusesIn: statusRight === undefined ? undefined : ticked(statusRight)[0],
      fragments: message.startsWith('—') ? [] : ticked(left!),
      fragmentsIn: right === undefined ? undefined : ticked(right)[0],
      file: file ?? '',
      title,
    });
  });
  return { rows, problems };
}

/** Every way `rows` disagree with the files under `root`. */
export function checkRows(rows: readonly Row[], root: string): string[] {
  const problems: string[] = [];
  const cache = new Map<string, string | undefined>();
  const read = (file: string): string | undefined => {
    if (!cache.has(file)) {
      const path = join(root, file);
      cache.set(file, existsSync(path) ? readFileSync(path, 'utf8') : undefined);
    }
    return cache.get(file);
  };
  for (const r of rows) {
    const at = `line ${r.line} (${r.what})`;
    const source = read(r.file);
    if (source === undefined) {
      problems.push(`${at}: no test file ${r.file}`);
      continue;
    }
    if (!source.includes(r.title)) problems.push(`${at}: ${r.file} has no test titled ${JSON.stringify(r.title)}`);
    const statusFile = r.statusesIn ?? r.file;
    const statusText = read(statusFile);
    if (statusText === undefined) problems.push(`${at}: no file ${statusFile}`);
    for (const s of r.statuses)
      if (statusText !== undefined && !statusText.includes(s))
        problems.push(`${at}: status ${s} does not appear in ${statusFile}`);
    const where = r.fragmentsIn ?? r.file;
    const text = read(where);
    if (text === undefined) {
      problems.push(`${at}: no file ${where}`);
      continue;
    }
    // A test matches messages with regular expressions: `garbled\.txt, line 1` quotes `garbled.txt, line 1`.
    const unescaped = text.replace(/\\(.)/g, '$1');
    for (const f of r.fragments)
      if (!text.includes(f) && !unescaped.includes(f))
        problems.push(`${at}: message ${JSON.stringify(f)} not in ${where}`);
  }
  return problems;
}

test('docs/reliability.md: every row names an existing test, its status and its message as the test asserts them', () => {
  const { rows, problems } = parseTable(readFileSync(DOC, 'utf8'));
  assert.deepEqual(problems, []);
  assert.deepEqual(checkRows(rows, ROOT), []);
  for (const s of SECTIONS) {
    const n = rows.filter((r) => r.section.toLowerCase().startsWith(s)).length;
    assert.ok(n >= 3, `section ${s}: ${n} rows`);
  }
  assert.ok(
    rows.every((r) => SECTIONS.some((s) => r.section.toLowerCase().startsWith(s))),
    'every row is in a service section',
  );
  const keys = rows.map((r) => `${r.section}|${r.what}`);
  assert.equal(new Set(keys).size, keys.length, 'no row twice');
});

test('the check finds each kind of drift (planted faults)', () => {
  const file = 'e2e/src/reliability-doc.test.ts';
  const title = 'the check finds each kind of drift (planted faults)';
  const row = (what: string, status: string, message: string, f = file, t = title) =>
    `| ${what} | ${status} | ${message} | \`${f}\` | ${t} |`;
  const doc = [
    '## CLI',
    '',
    '| What is sent or done | Status | Message | Test file | Test |',
    '|---|---|---|---|---|',
    row('good', '`PLANTED_STATUS_OK`', '`planted message \\| with a pipe`'),
    row('regex-quoted message', '`PLANTED_STATUS_OK`', '`planted.rege' + 'x (quoted)`'),
    row('message in another file', '`PLANTED_STATUS_OK`', '`ROOT` ← `packages/cli/src/launch.ts`'),
    row('status in another file', '`SERVICE_NAMES` ← `packages/cli/src/launch.ts`', '—'),
    row('status not in the other file', '`PLANTED_STATUS_OK` ← `packages/cli/src/launch.ts`', '—'),
    row('no message asserted', '`PLANTED_STATUS_OK`', '— (the test checks the status only)'),
    row('missing file', '`PLANTED_STATUS_OK`', '—', 'e2e/src/nope.test.ts'),
    row('renamed test', '`PLANTED_STATUS_OK`', '—', file, 'a title nobody ' + 'wrote'),
    row('status not asserted', '`PLANTED_STATUS_' + 'MISSING`', '—'),
    row('message not asserted', '`PLANTED_STATUS_OK`', '`a message nobody ' + 'asserts`'),
    '| too | few | cells |',
  ].join('\n');
  // The second row's message as a test would match it (the only place this file holds it, escaped):
  assert.match('planted.rege' + 'x (quoted)', /planted\.regex \(quoted\)/);
  assert.ok('planted message | with a pipe'.length > 0);
  const { rows, problems } = parseTable(doc);
  assert.deepEqual(problems, ['line 15: 3 cells, expected 5']);
  assert.deepEqual(rows[0]!.fragments, ['planted message | with a pipe']);
  const found = checkRows(rows, ROOT);
  assert.deepEqual(
    found.map((p) => p.replace(/^line \d+ \(([^)]*)\).*$/, '$1')),
    ['status not in the other file', 'missing file', 'renamed test', 'status not asserted', 'message not asserted'],
    found.join('\n'),
  );
});
