/**
 * The chapter's results as one self-contained HTML page: tables as HTML, charts drawn in the browser by Chart.js,
 * whose UMD bundle is read from node_modules at render time and inlined. The page makes no request of its own (a
 * Content-Security-Policy forbids every fetch), so it renders from a file, offline.
 *
 * Every string taken from the results is HTML-escaped; the results themselves travel as JSON inside
 * `<script type="application/json" id="ch8-results">` with `<`, `>`, `&`, U+2028 and U+2029 escaped, so no value
 * can close the element. After drawing, each chart's canvas carries `data-drawn-pixels` (the count of pixels that
 * are not transparent), and the body `data-charts-drawn` and `data-report-errors`: what a headless browser test reads.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DependencyUnavailableError } from '@ch8/errors';
import type { ChapterEpoch, ChapterModelResult, ChapterResults, ChapterSample, ChapterSplit } from './results.ts';

/** The two curves drawn per model, in page order. */
export const CHART_KINDS = ['loss', 'accuracy'] as const;
export type ChartKind = (typeof CHART_KINDS)[number];

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that is safe inside a `<script>` element: nothing in it can end the element or start a comment. */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

let chartJsSource: string | undefined;

/** Chart.js's UMD bundle (defines the global `Chart`), read once from the installed package. */
function chartJs(): string {
  if (chartJsSource !== undefined) return chartJsSource;
  const require = createRequire(import.meta.url);
  let dist: string;
  try {
    // The package's exports map does not expose dist/*.umd*.js; its CommonJS entry lives in the same folder.
    dist = dirname(require.resolve('chart.js'));
  } catch (e) {
    throw new DependencyUnavailableError(`chart.js is not installed: ${(e as Error).message}`, { field: 'chart.js' });
  }
  let source: string | undefined;
  for (const file of ['chart.umd.min.js', 'chart.umd.js']) {
    try {
      source = readFileSync(join(dist, file), 'utf8');
      break;
    } catch {
      // try the next name
    }
  }
  if (source === undefined) {
    throw new DependencyUnavailableError(`no UMD bundle of chart.js in ${dist}`, { file: dist, field: 'chart.js' });
  }
  // Inside <script>, only "</script" and "<!--" change how the HTML parser reads on; "<\/" means the same in JS.
  chartJsSource = source.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
  return chartJsSource;
}

function num(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits);
}

function attr(value: string | number): string {
  return escapeHtml(String(value));
}

const CSS = `
:root { color-scheme: light; --fg: #1d2330; --muted: #5b6478; --line: #d8dde6; --bg-alt: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.meta span + span::before { content: " · "; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: var(--bg-alt); }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.confusion caption { min-width: 22em; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 4px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 16px; }
.chart { position: relative; height: 280px; border: 1px solid var(--line); border-radius: 4px; padding: 8px; }
.confusions { display: flex; flex-wrap: wrap; gap: 24px; }
.share { color: var(--muted); }
.best { font-weight: 600; }
#ch8-errors:empty { display: none; }
#ch8-errors { color: #a00; border: 1px solid #a00; padding: 8px 8px 8px 28px; }
details { margin: 8px 0; }
`;

/** Records script errors and blocked requests into the page, before anything else runs. */
const ERROR_SCRIPT = `
(function () {
  var count = 0;
  function record(message) {
    count += 1;
    document.body.setAttribute('data-report-errors', String(count));
    var list = document.getElementById('ch8-errors');
    var item = document.createElement('li');
    item.textContent = String(message);
    list.appendChild(item);
  }
  window.ch8RecordError = record;
  window.addEventListener('error', function (e) {
    record((e.message || 'error') + (e.filename ? ' at ' + e.filename + ':' + e.lineno : ''));
  });
  window.addEventListener('unhandledrejection', function (e) { record('unhandled rejection: ' + e.reason); });
  document.addEventListener('securitypolicyviolation', function (e) {
    record('blocked by the page policy: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
})();
`;

/** Draws each canvas[data-chart] from the embedded results, then counts its drawn pixels. */
const DRAW_SCRIPT = `
(function () {
  var results = JSON.parse(document.getElementById('ch8-results').textContent);
  var colors = { train: '#1f77b4', dev: '#d62728', best: '#2ca02c' };
  function finite(v) { return typeof v === 'number' && isFinite(v) ? v : null; }
  function series(epochs, key) { return epochs.map(function (e) { return finite(e[key]); }); }
  function hasAny(values) { return values.some(function (v) { return v !== null; }); }
  function line(label, data, color) {
    return { label: label, data: data, borderColor: color, backgroundColor: color, pointRadius: 3, borderWidth: 2, spanGaps: true };
  }
  function config(model, kind) {
    var epochs = model.epochs || [];
    var labels = epochs.map(function (e) { return e.epoch; });
    var datasets = [];
    var yTitle;
    if (kind === 'loss') {
      yTitle = 'loss';
      datasets.push(line('train loss', series(epochs, 'train_loss'), colors.train));
      var devLoss = series(epochs, 'dev_loss');
      if (hasAny(devLoss)) datasets.push(line('dev loss', devLoss, colors.dev));
    } else {
      yTitle = 'accuracy';
      datasets.push(line('train accuracy', series(epochs, 'train_accuracy'), colors.train));
      var devAcc = series(epochs, 'dev_accuracy');
      if (hasAny(devAcc)) datasets.push(line('dev accuracy', devAcc, colors.dev));
      var best = epochs.map(function (e) {
        if (e.epoch !== model.best_epoch) return null;
        var v = finite(e.dev_accuracy);
        return v !== null ? v : finite(model.dev_accuracy);
      });
      if (hasAny(best)) {
        datasets.push({ label: 'best epoch (' + model.best_epoch + ')', data: best, borderColor: colors.best,
          backgroundColor: colors.best, pointStyle: 'rectRot', pointRadius: 9, pointHoverRadius: 10, showLine: false, order: -1 });
      }
    }
    return {
      type: 'line',
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        scales: { x: { title: { display: true, text: 'epoch' } }, y: { title: { display: true, text: yTitle } } },
        plugins: { title: { display: true, text: kind === 'loss' ? 'Loss per epoch' : 'Accuracy per epoch' } }
      }
    };
  }
  function drawnPixels(canvas) {
    var pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    var n = 0;
    for (var i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) n += 1;
    return n;
  }
  var canvases = document.querySelectorAll('canvas[data-chart]');
  var drawn = 0;
  for (var i = 0; i < canvases.length; i += 1) {
    var canvas = canvases[i];
    try {
      if (typeof Chart !== 'function') throw new Error('Chart.js did not load');
      var model = results.models[Number(canvas.getAttribute('data-model'))];
      var chart = new Chart(canvas, config(model, canvas.getAttribute('data-chart')));
      chart.draw();
      canvas.setAttribute('data-drawn-pixels', String(drawnPixels(canvas)));
      drawn += 1;
    } catch (e) {
      canvas.setAttribute('data-drawn-pixels', '0');
      window.ch8RecordError('chart ' + canvas.id + ': ' + (e && e.message ? e.message : e));
    }
  }
  document.body.setAttribute('data-charts-drawn', String(drawn));
})();
`;

function resultsTable(models: ChapterModelResult[]): string {
  const head = [
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
  ];
  const rows = models.map(
    (m, i) =>
      `<tr data-model="${i}"><td>${escapeHtml(m.problem)}</td><td>${escapeHtml(m.model)}</td>` +
      `<td><a href="#model-${i}">${escapeHtml(m.name)}</a></td><td>${m.finetune ? 'fine-tuned' : 'frozen'}</td>` +
      `<td>${escapeHtml(m.backend)}</td><td class="n">${num(m.dev_accuracy, 4)}</td>` +
      `<td class="n">${num(m.best_epoch, 0)}</td><td class="n">${num(m.train_examples_per_second, 0)}</td>` +
      `<td class="n">${m.epochs.length}</td><td class="n">${num(m.seconds, 1)}</td></tr>`,
  );
  return (
    `<table id="results"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

function share(count: number, total: number): string {
  return total > 0 ? `${((100 * count) / total).toFixed(1)}%` : '—';
}

function confusionTable(split: ChapterSplit, modelIndex: number): string {
  const labels = ['negative', 'positive'];
  const rows = split.confusion.map((row, t) => {
    const total = row[0] + row[1];
    const cells = row.map(
      (count, p) =>
        `<td class="n" data-true="${t}" data-predicted="${p}" data-count="${count}">${count} ` +
        `<span class="share">(${share(count, total)})</span></td>`,
    );
    return `<tr><th scope="row">${labels[t]}</th>${cells.join('')}</tr>`;
  });
  return (
    `<table class="confusion" data-model="${modelIndex}" data-split="${attr(split.split)}">` +
    `<caption><strong>${escapeHtml(split.split)}</strong>: ${split.examples} examples, accuracy ` +
    `${num(split.accuracy, 4)}, precision ${num(split.precision, 4)}, recall ${num(split.recall, 4)}, ` +
    `F1 ${num(split.f1, 4)}</caption>` +
    `<thead><tr><th>true \\ predicted</th>${labels.map((l) => `<th scope="col">${l}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

function epochTable(m: ChapterModelResult): string {
  const rows = m.epochs.map(
    (e: ChapterEpoch) =>
      `<tr${e.epoch === m.best_epoch ? ' class="best"' : ''}><td class="n">${e.epoch}</td>` +
      `<td class="n">${num(e.train_loss, 4)}</td><td class="n">${num(e.train_accuracy, 4)}</td>` +
      `<td class="n">${num(e.dev_loss, 4)}</td><td class="n">${num(e.dev_accuracy, 4)}</td>` +
      `<td class="n">${num(e.train_examples_per_second, 0)}</td><td class="n">${num(e.seconds, 1)}</td>` +
      `<td class="n">${e.learning_rate === undefined ? '—' : String(e.learning_rate)}</td></tr>`,
  );
  const head = ['epoch', 'train loss', 'train acc', 'dev loss', 'dev acc', 'examples/s', 'seconds', 'learning rate'];
  return (
    `<details><summary>epochs</summary><table class="epochs">` +
    `<thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>` +
    `</details>`
  );
}

function modelSection(m: ChapterModelResult, i: number): string {
  const details = [
    `problem ${escapeHtml(m.problem)}`,
    `model ${escapeHtml(m.model)}`,
    `embeddings ${m.finetune ? 'fine-tuned' : 'frozen'}`,
    `backend ${escapeHtml(m.backend)}`,
    m.batch_size === undefined ? '' : `batch size ${m.batch_size === 0 ? 'full' : m.batch_size}`,
    m.run_id === undefined ? '' : `run ${escapeHtml(m.run_id)}`,
    `exported to <code>${escapeHtml(m.model_dir)}</code>`,
  ].filter((s) => s !== '');
  const charts = CHART_KINDS.map(
    (kind) =>
      `<div class="chart"><canvas id="chart-${i}-${kind}" data-model="${i}" data-chart="${kind}" role="img" ` +
      `aria-label="${kind} per epoch of ${attr(m.name)}"></canvas></div>`,
  );
  const splits = m.splits ?? [];
  const confusions =
    splits.length === 0
      ? ''
      : `<h3>Confusion matrices (best epoch)</h3><div class="confusions">` +
        `${splits.map((s) => confusionTable(s, i)).join('')}</div>`;
  return (
    `<section class="model" id="model-${i}" data-model="${i}">` +
    `<h2>${escapeHtml(m.name)} <small>(problem ${escapeHtml(m.problem)})</small></h2>` +
    `<p class="meta">${details.map((d) => `<span>${d}</span>`).join('')}</p>` +
    `<div class="charts">${charts.join('')}</div>${confusions}${epochTable(m)}</section>`
  );
}

function samplesTable(samples: ChapterSample[]): string {
  const rows = samples.map(
    (s) =>
      `<tr><td>${escapeHtml(s.text)}</td><td>${escapeHtml(s.model)}</td><td>${escapeHtml(s.label)}</td>` +
      `<td class="n">${num(s.probability, 4)}</td></tr>`,
  );
  return (
    `<h2>Sample predictions</h2><table id="samples"><thead><tr><th>text</th><th>model</th><th>label</th>` +
    `<th>probability</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

/** Forbids every request: scripts and styles only inline, images only as data: URLs. */
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/** The results as one HTML page that renders offline (Chart.js inlined, no request). */
export function renderReport(results: ChapterResults): string {
  const meta = [
    results.data === undefined ? '' : `data: ${escapeHtml(results.data)}`,
    results.vectors === undefined ? '' : `vectors: ${escapeHtml(results.vectors)}`,
    results.started_at === undefined ? '' : `started ${escapeHtml(results.started_at)}`,
    results.seconds === undefined ? '' : `${num(results.seconds, 1)} s in all`,
    `${results.models.length} model${results.models.length === 1 ? '' : 's'}`,
  ].filter((s) => s !== '');
  const body =
    results.models.length === 0
      ? '<p>No models in these results.</p>'
      : `${resultsTable(results.models)}${results.models.map(modelSection).join('')}`;
  const samples = results.samples !== undefined && results.samples.length > 0 ? samplesTable(results.samples) : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chapter 8 results</title>
<style>${CSS}</style>
</head>
<body data-report-errors="0">
<ul id="ch8-errors"></ul>
<script>${ERROR_SCRIPT}</script>
<h1>Chapter 8: sentiment classifiers on word embeddings</h1>
<p class="meta">${meta.map((m) => `<span>${m}</span>`).join('')}</p>
${body}
${samples}
<script type="application/json" id="ch8-results">${scriptSafeJson(results)}</script>
<script>${chartJs()}</script>
<script>${DRAW_SCRIPT}</script>
</body>
</html>
`;
}
