/**
 * `results.json` -> `report.html` without the CLI: read, validate, render, write atomically (a temporary file in
 * the same folder, then a rename, so a reader never sees half a page).
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InvalidInputError, NotFoundError } from '@ch8/errors';
import { renderReport } from './html.ts';
import { validateChapterResults } from './validate.ts';

/** Writes `text` to `path` through a temporary file and a rename. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    await writeFile(tmp, text, 'utf8');
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Reads and validates the results at `resultsJsonPath`, and writes their HTML report to `outHtmlPath`. */
export async function renderReportFile(resultsJsonPath: string, outHtmlPath: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(resultsJsonPath, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError('no such results file', { file: resultsJsonPath });
    }
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InvalidInputError(`not JSON: ${(e as Error).message}`, { file: resultsJsonPath });
  }
  const results = validateChapterResults(value, resultsJsonPath);
  await writeFileAtomic(outHtmlPath, renderReport(results));
}
