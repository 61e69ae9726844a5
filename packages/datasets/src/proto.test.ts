import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  PrepareDatasetRequestSchema,
  TabularFormat,
  TokenizerKind,
  type PrepareDatasetRequest,
} from '@ch8/contracts/dataset';
import { isInvalidInput } from '@ch8/errors';
import type { DatasetSpec } from './dataset.ts';
import { datasetSpecFromProto, datasetSpecToProto, type PrepareDatasetInit } from './proto.ts';

const request = (init: PrepareDatasetInit): PrepareDatasetRequest => create(PrepareDatasetRequestSchema, init);
/** Through the wire format and back. */
const wire = (init: PrepareDatasetInit): PrepareDatasetRequest =>
  fromBinary(PrepareDatasetRequestSchema, toBinary(PrepareDatasetRequestSchema, request(init)));
const fieldIs = (field: string) => (e: unknown) => isInvalidInput(e) && e.field === field;

describe('datasetSpecToProto', () => {
  it('writes each kind as the request field by field', () => {
    assert.deepEqual(
      datasetSpecToProto({ kind: 'sst2', dir: '/data/sst2' }),
      request({
        source: { kind: { case: 'sst2', value: { dir: '/data/sst2' } } },
        tokenizer: TokenizerKind.UNSPECIFIED,
        embedding: { source: '' },
        name: '',
      }),
    );
    assert.deepEqual(
      datasetSpecToProto(
        {
          kind: 'tabular',
          files: [
            { split: 'train', path: 'a.tsv' },
            { split: 'held-out', path: '/x/b.tsv' },
          ],
          format: 'tsv',
          textColumn: 'sentence',
          labelColumn: 'label',
          tokenizer: { kind: 'chapter', version: 1 },
        },
        { vectors: '/v/glove.txt', name: 'mine' },
      ),
      request({
        source: {
          kind: {
            case: 'tabular',
            value: {
              files: [
                { split: 'train', path: 'a.tsv' },
                { split: 'held-out', path: '/x/b.tsv' },
              ],
              format: TabularFormat.TSV,
              textColumn: 'sentence',
              labelColumn: 'label',
            },
          },
        },
        tokenizer: TokenizerKind.CHAPTER,
        embedding: { source: '/v/glove.txt' },
        name: 'mine',
      }),
    );
    const builtin = datasetSpecToProto({
      kind: 'builtin',
      sets: ['imdb'],
      seed: 7,
      tokenizer: { kind: 'raw', version: 1 },
    });
    assert.deepEqual(
      builtin,
      request({
        source: { kind: { case: 'builtin', value: { sets: ['imdb'], splitSeed: 7 } } },
        tokenizer: TokenizerKind.RAW,
        embedding: { source: '' },
      }),
    );
  });

  it('refuses what a request cannot carry', () => {
    assert.throws(
      () => datasetSpecToProto({ kind: 'builtin', tokenizer: { kind: 'raw', version: 2 } }),
      fieldIs('tokenizer.version'),
    );
    assert.throws(() => datasetSpecToProto({ kind: 'builtin', seed: 2 ** 32 }), fieldIs('seed'));
    assert.throws(() => datasetSpecToProto({ kind: 'builtin', seed: -1 }), fieldIs('seed'));
    assert.throws(() => datasetSpecToProto({ kind: 'tabular', files: [] }), fieldIs('files'));
  });
});

describe('datasetSpecFromProto', () => {
  it('an empty request is the builtin review sets; zero values stay out of the spec', () => {
    assert.deepEqual(datasetSpecFromProto(request({})), { kind: 'builtin' });
    assert.deepEqual(datasetSpecFromProto(request({ source: { kind: { case: 'builtin', value: {} } } })), {
      kind: 'builtin',
    });
    assert.deepEqual(
      datasetSpecFromProto(
        request({ source: { kind: { case: 'tabular', value: { files: [{ split: 'train', path: 'a.csv' }] } } } }),
      ),
      {
        kind: 'tabular',
        files: [{ split: 'train', path: 'a.csv' }],
      },
    );
    assert.deepEqual(
      datasetSpecFromProto(
        request({ source: { kind: { case: 'sst2', value: { dir: 'sst2' } } }, tokenizer: TokenizerKind.RAW }),
      ),
      {
        kind: 'sst2',
        dir: 'sst2',
        tokenizer: { kind: 'raw', version: 1 },
      },
    );
  });

  it('round trip: spec -> request -> wire -> spec gives the spec back', () => {
    const specs: DatasetSpec[] = [
      { kind: 'builtin' },
      { kind: 'builtin', sets: ['amazon', 'yelp'], seed: 4_000_000_000, tokenizer: { kind: 'chapter', version: 1 } },
      { kind: 'sst2', dir: '../shared/data/sst2' },
      { kind: 'sst2', dir: '/abs', tokenizer: { kind: 'raw', version: 1 } },
      {
        kind: 'tabular',
        files: [
          { split: 'b', path: 'b.jsonl' },
          { split: 'a', path: 'a.jsonl' },
        ],
        format: 'jsonl',
        textColumn: 'body',
        labelColumn: 'y',
      },
      {
        kind: 'tabular',
        files: [{ split: 'train', path: 't.csv' }],
        format: 'csv',
        tokenizer: { kind: 'raw', version: 1 },
      },
    ];
    for (const spec of specs) assert.deepEqual(datasetSpecFromProto(wire(datasetSpecToProto(spec))), spec);
  });

  it('bad requests: InvalidInputError naming the request field', () => {
    const tab = (value: object) => request({ source: { kind: { case: 'tabular', value } } });
    assert.throws(() => datasetSpecFromProto(request({ tokenizer: 9 as TokenizerKind })), fieldIs('tokenizer'));
    assert.throws(
      () => datasetSpecFromProto(tab({ files: [{ split: 'train', path: 'a' }], format: 9 })),
      fieldIs('source.tabular.format'),
    );
    assert.throws(() => datasetSpecFromProto(tab({ files: [] })), fieldIs('source.tabular.files'));
    assert.throws(
      () =>
        datasetSpecFromProto(
          tab({
            files: [
              { split: 'train', path: 'a' },
              { split: 'train', path: 'b' },
            ],
          }),
        ),
      (e: unknown) => fieldIs('source.tabular.files.split')(e) && /named twice/.test(String(e)),
    );
    assert.throws(
      () => datasetSpecFromProto(tab({ files: [{ split: 'train', path: '' }] })),
      fieldIs('source.tabular.files.path'),
    );
    assert.throws(
      () => datasetSpecFromProto(request({ source: { kind: { case: 'sst2', value: { dir: '' } } } })),
      fieldIs('source.sst2.dir'),
    );
    assert.throws(
      () => datasetSpecFromProto(request({ source: { kind: { case: 'builtin', value: { sets: ['netflix'] } } } })),
      (e: unknown) => fieldIs('source.builtin.sets')(e) && /netflix/.test(String(e)),
    );
    assert.throws(
      () => datasetSpecFromProto({ source: { kind: { case: 'other' } }, tokenizer: 0 } as never),
      fieldIs('source'),
    );
  });
});
