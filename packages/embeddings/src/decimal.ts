/**
 * Internal: decimal numbers parsed straight from bytes, without making a string per value.
 *
 * The result is always exactly `Number(text)`: the fast path is Clinger's (an integer mantissa of at most 15 digits,
 * below 2^53, times or divided by an exactly representable power of ten 10^k, |k| <= 22, is one correctly rounded
 * IEEE operation); anything else (long mantissas, big exponents, hex, Infinity) falls back to `Number(text)`.
 */
import { InvalidInputError } from '@ch8/errors';

const POW10: number[] = [];
for (let k = 0; k <= 22; k++) POW10.push(Number(`1e${k}`));

const WS = new Uint8Array(256);
WS[0x20] = WS[0x09] = WS[0x0d] = WS[0x0a] = 1;

/**
 * `Number()` of the text in buf[s, e), or NaN when it is not a number (also for an empty or blank token).
 * `decimalOnly`: also NaN for what `Number()` takes but a vector file's decimal is not (`0x10`, `0b1`, `Infinity`,
 * white space other than the separators around the digits).
 */
export function parseNumber(buf: Uint8Array, s: number, e: number, decimalOnly = false): number {
  let i = s;
  let neg = false;
  let c = i < e ? (buf[i] as number) : 0;
  if (c === 0x2d) {
    neg = true;
    i++;
  } else if (c === 0x2b) i++;
  let m = 0;
  let sig = 0;
  let k = 0;
  let digits = 0;
  while (i < e && (c = buf[i] as number) >= 0x30 && c <= 0x39) {
    m = m * 10 + (c - 0x30);
    if (m !== 0) sig++;
    digits++;
    i++;
  }
  if (i < e && buf[i] === 0x2e) {
    i++;
    while (i < e && (c = buf[i] as number) >= 0x30 && c <= 0x39) {
      m = m * 10 + (c - 0x30);
      if (m !== 0) sig++;
      digits++;
      k--;
      i++;
    }
  }
  if (i < e && (buf[i] === 0x65 || buf[i] === 0x45) && digits > 0) {
    i++;
    let eneg = false;
    if (i < e && buf[i] === 0x2d) {
      eneg = true;
      i++;
    } else if (i < e && buf[i] === 0x2b) i++;
    let x = 0;
    let xd = 0;
    while (i < e && (c = buf[i] as number) >= 0x30 && c <= 0x39 && x < 1e6) {
      x = x * 10 + (c - 0x30);
      xd++;
      i++;
    }
    if (xd === 0) i = -1; // "1e" is not a number: let Number() say so
    k += eneg ? -x : x;
  }
  if (i === e && digits > 0 && sig <= 15 && k >= -22 && k <= 22) {
    const v = k >= 0 ? m * (POW10[k] as number) : m / (POW10[-k] as number);
    return neg ? -v : v;
  }
  return slowNumber(buf, s, e, decimalOnly);
}

const DECIMAL = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

function slowNumber(buf: Uint8Array, s: number, e: number, decimalOnly: boolean): number {
  const text = Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString('latin1');
  if (decimalOnly && !DECIMAL.test(text)) return NaN;
  const v = Number(text);
  // Number('') and Number(' ') are 0, not "not a number".
  return v === 0 && text.trim().length === 0 ? NaN : v;
}

/**
 * Parses the values in buf[s, e), separated by `sep` (0x20 for text lines, 0x2c for JSON arrays; white space around
 * values is skipped, a trailing separator is allowed), into dest[0..dim) as float32 (the float32 nearest to the
 * decimal's double). Values beyond dim (wink's l2norm and index) are checked, not stored.
 *
 * @throws InvalidInputError when the count is not `expected`, a value is not a decimal number or not a finite
 *   float32 (NaN, infinities, beyond +-3.4e38), or two values lack their separator.
 */
export function parseRow(
  buf: Uint8Array,
  s: number,
  e: number,
  sep: number,
  dest: Float32Array,
  dim: number,
  expected: number,
  where: { file: string; line?: number; entry?: number },
): void {
  let p = s;
  let n = 0;
  for (;;) {
    while (p < e && WS[buf[p] as number] === 1) p++;
    if (p >= e) break;
    let q = p;
    while (q < e && buf[q] !== sep && WS[buf[q] as number] !== 1) q++;
    const v = parseNumber(buf, p, q, true);
    const f = Math.fround(v);
    if (!Number.isFinite(f)) {
      const text = Buffer.from(buf.buffer, buf.byteOffset + p, Math.min(q - p, 40)).toString('latin1');
      throw new InvalidInputError(
        Number.isNaN(v)
          ? `value ${n + 1} is not a number: "${text}"`
          : `value ${n + 1} is not a finite float32: "${text}"`,
        where,
      );
    }
    if (n < dim) dest[n] = f;
    n++;
    p = q;
    while (p < e && WS[buf[p] as number] === 1) p++;
    if (p < e) {
      if (buf[p] === sep) p++;
      else if (WS[sep] !== 1) throw new InvalidInputError(`no "${String.fromCharCode(sep)}" after value ${n}`, where);
    }
  }
  if (n !== expected) throw new InvalidInputError(`expected ${expected} values, found ${n}`, where);
}
