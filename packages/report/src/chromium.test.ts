/**
 * Renders a generated report in headless Chromium (Debian's `chromium`; infra/scripts/chromium.sh installs it, or
 * CH8_CHROMIUM names a binary): one run takes a screenshot, kept under .cache/artifacts/, and dumps the DOM after
 * the page's scripts ran. The DOM must show no script error, every chart drawn (pixels that are not transparent),
 * and the page's error recorder must have seen the two faults the test plants on purpose.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'node-html-parser';
import { generateResults } from './fixture.ts';
import { renderReport } from './html.ts';

const run = promisify(execFile);

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findChromium(): string | undefined {
  const named = process.env.CH8_CHROMIUM;
  if (named !== undefined && named !== '') return executable(named) ? named : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      if (dir !== '' && executable(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

/** Faults planted after the page's own scripts, to show the recorder sees what the assertions rely on. */
const CONTROLS = `<script>
new Image().src = 'http://127.0.0.1:9/control.png';
setTimeout(function () { throw new Error('control error'); }, 0);
</script>`;

const ARTIFACTS = fileURLToPath(new URL('../.cache/artifacts/', import.meta.url));

test('headless Chromium draws every chart of a 3-model report with no script error', async (t) => {
  const chromium = findChromium();
  if (chromium === undefined) {
    const named = process.env.CH8_CHROMIUM;
    t.skip(
      named !== undefined && named !== ''
        ? `chromium not found: CH8_CHROMIUM=${named} is not an executable file`
        : 'chromium not installed (bash infra/scripts/chromium.sh as root, or set CH8_CHROMIUM to a Chromium binary)',
    );
    return;
  }
  const started = Date.now();
  const results = generateResults({ models: 3, epochs: 8, seed: 11 });
  const dir = await mkdtemp(join(tmpdir(), 'ch8-chromium-'));
  try {
    const html = renderReport(results).replace('</body>', `${CONTROLS}\n</body>`);
    const page = join(dir, 'report.html');
    const screenshot = join(dir, 'report.png');
    await writeFile(page, html);
    const { stdout } = await run(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-extensions',
        '--disable-dev-shm-usage',
        `--user-data-dir=${join(dir, 'profile')}`,
        '--window-size=1280,2800',
        `--screenshot=${screenshot}`,
        '--dump-dom',
        pathToFileURL(page).href,
      ],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'disabled:' } },
    );

    await mkdir(ARTIFACTS, { recursive: true });
    const kept = join(ARTIFACTS, 'chromium-report.png');
    await copyFile(screenshot, kept);
    await writeFile(join(ARTIFACTS, 'chromium-report.html'), html);
    t.diagnostic(`screenshot kept at ${kept} (chromium ${Date.now() - started} ms)`);

    const png = await readFile(screenshot);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG screenshot');
    assert.ok(png.length > 20_000, `screenshot of ${png.length} bytes looks empty`);

    const dom = parse(stdout);
    const errors = dom.querySelectorAll('#ch8-errors li').map((li) => li.text);
    // Exactly the two planted faults: the blocked request and the thrown error; nothing from the page itself.
    assert.equal(errors.length, 2, `errors recorded in the page: ${JSON.stringify(errors)}`);
    assert.ok(
      errors.some((e) => e.includes('blocked') && e.includes('127.0.0.1:9')),
      `the page policy blocked the planted request: ${JSON.stringify(errors)}`,
    );
    assert.ok(
      errors.some((e) => e.includes('control error')),
      `the planted error was recorded: ${JSON.stringify(errors)}`,
    );
    assert.equal(dom.querySelector('body')!.getAttribute('data-report-errors'), '2');

    const canvases = dom.querySelectorAll('canvas[data-chart]');
    assert.equal(canvases.length, 6);
    assert.equal(dom.querySelector('body')!.getAttribute('data-charts-drawn'), '6');
    for (const canvas of canvases) {
      const drawn = Number(canvas.getAttribute('data-drawn-pixels'));
      const total = Number(canvas.getAttribute('width')) * Number(canvas.getAttribute('height'));
      assert.ok(total > 0, `${canvas.id} has a size`);
      assert.ok(drawn > 0.01 * total, `${canvas.id}: ${drawn} of ${total} pixels drawn`);
      assert.ok(drawn < total, `${canvas.id}: the background stays transparent`);
    }
    // The tables survived the scripts.
    assert.equal(dom.querySelectorAll('#results tbody tr').length, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
