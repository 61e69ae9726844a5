/** Shared row type and file helpers of @ch8/datasets. */
import { readFile } from 'node:fs/promises';
import { InvalidInputError, NotFoundError, PermissionDeniedError } from '@ch8/errors';

/** One labelled sentence as read from a source, before tokenization. */
export interface LabelledRow {
  text: string;
  /** 0 = negative, 1 = positive. */
  label: 0 | 1;
}

/** Map a file system error to a typed error naming the file. */
export function fsError(e: unknown, file: string): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return new NotFoundError('no such file', { file }, { cause: e });
  if (code === 'EACCES' || code === 'EPERM')
    return new PermissionDeniedError('permission denied', { file }, { cause: e });
  if (code === 'EISDIR') return new InvalidInputError('is a directory, expected a file', { file }, { cause: e });
  return e;
}

/** Read a whole UTF-8 file; missing -> NotFoundError. */
export async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw fsError(e, file);
  }
}

/** Strip a leading UTF-8 byte order mark. */
export function stripBom(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

/**
 * Calls `onLine(line, lineNumber)` for each line of `text` (1-based numbers), with the line end (`\n` or `\r\n`)
 * removed. A final line end does not produce an extra empty line.
 */
export function forEachLine(text: string, onLine: (line: string, lineNumber: number) => void): void {
  let start = 0;
  let n = 0;
  const len = text.length;
  while (start < len) {
    let end = text.indexOf('\n', start);
    const next = end < 0 ? len : end + 1;
    if (end < 0) end = len;
    const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end;
    n += 1;
    onLine(text.slice(start, stop), n);
    start = next;
  }
}
