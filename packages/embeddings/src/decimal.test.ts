import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isInvalidInput } from '@ch8/errors';
import { parseNumber, parseRow } from './decimal.ts';
import { seededFloats } from './write.ts';

function expected(text: string): number {
  const v = Number(text);
  return v === 0 && text.trim().length === 0 ? NaN : v;
}

function check(text: string): void {
  const bytes = Buffer.from(`#${text}#`, 'latin1'); // neighbours that are not part of the number
  const got = parseNumber(bytes, 1, bytes.length - 1);
  assert.ok(Object.is(got, expected(text)), `"${text}": got ${got}, Number() gives ${expected(text)}`);
}

test('parseNumber equals Number() on edge cases', () => {
  for (const t of [
    '0',
    '-0',
    '+0',
    '1',
    '-1',
    '0.1',
    '-0.038194',
    '.5',
    '5.',
    '-.5',
    '1e5',
    '1E5',
    '1e-5',
    '1e+5',
    '2.5e-3',
    '123456789012345',
    '1234567890123456',
    '12345678901234567890',
    '0.000000000000000000000001',
    '1e22',
    '1e23',
    '1e-22',
    '1e-23',
    '9007199254740993',
    '1.7976931348623157e308',
    '1e400',
    '-1e400',
    '5e-324',
    '1e-400',
    '00012.5000',
    '0.30000000000000004',
    '2.95153011',
    '341478',
    '0x10',
    'Infinity',
    '-Infinity',
    'inf',
    'nan',
    'NaN',
    '',
    ' ',
    '-',
    '+',
    '.',
    'e5',
    '1e',
    '1e+',
    '1.2.3',
    '1-2',
    '--1',
    '1,5',
    '١',
  ]) {
    check(t);
  }
});

test('parseNumber equals Number() on 100,000 seeded random decimals', () => {
  const rnd = seededFloats(77);
  const pick = (n: number): number => Math.floor(((rnd() + 1) / 2) * n);
  const digits = (n: number): string => Array.from({ length: n }, () => String(pick(10))).join('');
  for (let i = 0; i < 100_000; i++) {
    let t = ['', '-', '+'][pick(3)] as string;
    t += digits(pick(12));
    if (pick(2) === 1) t += `.${digits(pick(12))}`;
    if (pick(4) === 0) t += `${pick(2) === 0 ? 'e' : 'E'}${['', '-', '+'][pick(3)]}${digits(pick(4))}`;
    if (pick(50) === 0) t = t.slice(0, pick(t.length + 1)) + 'x.e-'[pick(4)] + t.slice(pick(t.length + 1));
    check(t);
  }
});

test('parseRow: separators, white space, float32 rounding, extra values counted', () => {
  const dest = new Float32Array(3);
  const row = (text: string, sep: number, dim = 3, expect = dim): void =>
    parseRow(Buffer.from(text, 'latin1'), 0, Buffer.byteLength(text, 'latin1'), sep, dest, dim, expect, { file: 'f' });
  row('0.1 -2 3e-2 ', 0x20);
  assert.deepEqual(Array.from(dest), [Math.fround(0.1), -2, Math.fround(0.03)]);
  row(' 1 ,2,\n3 ,', 0x2c);
  assert.deepEqual(Array.from(dest), [1, 2, 3]);
  row('4,5,6,7.7,99', 0x2c, 3, 5); // wink: l2norm and index after the vector
  assert.deepEqual(Array.from(dest), [4, 5, 6]);
  const fails = (text: string, sep: number, re: RegExp): void =>
    assert.throws(
      () => row(text, sep),
      (e: unknown) => isInvalidInput(e) && e.file === 'f' && re.test(e.message),
    );
  fails('1 2', 0x20, /expected 3 values, found 2/);
  fails('1 2 3 4', 0x20, /expected 3 values, found 4/);
  fails('1,,3', 0x2c, /value 2 is not a number: ""/);
  fails('1,two,3', 0x2c, /value 2 is not a number: "two"/);
  fails('1 2 nan', 0x20, /value 3 is not a number/);
});
