/**
 * `ch8.dataset.v1.PrepareDatasetRequest` <-> `DatasetSpec`: the dataset service reads a request into a spec (then
 * checks its paths against its data roots and calls `loadDataset`), and a client (the trainer, `ch8 data --addr`)
 * writes the spec it would prepare in-process into a request, so both sides read exactly the same data set.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  PrepareDatasetRequestSchema,
  TabularFormat as WireFormat,
  TokenizerKind,
  type PrepareDatasetRequest,
} from '@ch8/contracts/dataset';
import { InvalidInputError, isInvalidInput } from '@ch8/errors';
import {
  CHAPTER_TOKENIZER,
  RAW_TOKENIZER,
  TOKENIZER_VERSION,
  parseTokenizerSpec,
  type TokenizerSpec,
} from '@ch8/tokenizer';
import { checkDatasetSpec, type DatasetSpec, type FixtureSource, type TabularFormat } from './dataset.ts';

/** A PrepareDatasetRequest as the generated client takes it (a message is one too). */
export type PrepareDatasetInit = MessageInitShape<typeof PrepareDatasetRequestSchema>;

const FROM_WIRE_FORMAT: Record<number, TabularFormat | undefined> = {
  [WireFormat.TSV]: 'tsv',
  [WireFormat.CSV]: 'csv',
  [WireFormat.JSONL]: 'jsonl',
};
const TO_WIRE_FORMAT: Record<TabularFormat, WireFormat> = {
  tsv: WireFormat.TSV,
  csv: WireFormat.CSV,
  jsonl: WireFormat.JSONL,
};

function tokenizerFromProto(kind: TokenizerKind): TokenizerSpec | undefined {
  switch (kind) {
    case TokenizerKind.UNSPECIFIED:
      return undefined;
    case TokenizerKind.CHAPTER:
      return { ...CHAPTER_TOKENIZER };
    case TokenizerKind.RAW:
      return { ...RAW_TOKENIZER };
    default:
      throw new InvalidInputError(`unknown tokenizer ${String(kind)}`, { field: 'tokenizer' });
  }
}

/** Spec field names as the request names them, for errors. */
function requestField(kind: DatasetSpec['kind'], field: string): string {
  if (field.startsWith('tokenizer')) return 'tokenizer';
  const names: Record<string, string> = { textColumn: 'text_column', labelColumn: 'label_column', seed: 'split_seed' };
  return `source.${kind}.${names[field] ?? field}`;
}

/**
 * The data set a request names: no source = the builtin review sets (seed 0); a request's zero values (empty
 * columns, unspecified format and tokenizer, split seed 0, no sets) are left out of the spec, so they take the
 * library's defaults. Paths are copied as sent, not checked: callers confine them (the service to its data roots).
 * An unknown source kind, format or tokenizer, or a spec `checkDatasetSpec` refuses -> InvalidInputError naming the
 * request field (`source.tabular.files.split`, `tokenizer`, ...).
 */
export function datasetSpecFromProto(req: Pick<PrepareDatasetRequest, 'source' | 'tokenizer'>): DatasetSpec {
  const tokenizer = tokenizerFromProto(req.tokenizer);
  const withTokenizer = tokenizer === undefined ? {} : { tokenizer };
  const kind = req.source?.kind ?? { case: undefined };
  let spec: DatasetSpec;
  switch (kind.case) {
    case 'sst2':
      spec = { kind: 'sst2', dir: kind.value.dir, ...withTokenizer };
      break;
    case 'tabular': {
      const t = kind.value;
      const format = FROM_WIRE_FORMAT[t.format];
      if (format === undefined && t.format !== WireFormat.UNSPECIFIED) {
        throw new InvalidInputError(`unknown tabular format ${String(t.format)}`, { field: 'source.tabular.format' });
      }
      spec = {
        kind: 'tabular',
        files: t.files.map((f) => ({ split: f.split, path: f.path })),
        ...(format === undefined ? {} : { format }),
        ...(t.textColumn === '' ? {} : { textColumn: t.textColumn }),
        ...(t.labelColumn === '' ? {} : { labelColumn: t.labelColumn }),
        ...withTokenizer,
      };
      break;
    }
    case 'builtin':
    case undefined: {
      const b = kind.case === 'builtin' ? kind.value : { sets: [], splitSeed: 0 };
      spec = {
        kind: 'builtin',
        ...(b.sets.length > 0 ? { sets: b.sets as FixtureSource[] } : {}),
        ...(b.splitSeed !== 0 ? { seed: b.splitSeed } : {}),
        ...withTokenizer,
      };
      break;
    }
    default:
      throw new InvalidInputError('unknown data source kind', { field: 'source' });
  }
  try {
    checkDatasetSpec(spec);
  } catch (e) {
    if (!isInvalidInput(e) || e.field === undefined) throw e;
    throw new InvalidInputError(e.detail, { field: requestField(spec.kind, e.field) }, { cause: e });
  }
  return spec;
}

export interface ToProtoOptions {
  /** Vector source for the embedding service to prune ("" or absent: the service's default source). */
  vectors?: string;
  /** Name of the prepared data set. */
  name?: string;
}

/**
 * The PrepareDatasetRequest (a message: usable as the init of a request field or a call) that makes the dataset
 * service read exactly `spec` (paths as they are: the service
 * resolves relative ones against its data roots). Only what a request can carry: a tokenizer of another version
 * than this build's (the request names kinds only) or a builtin seed outside 0 .. 2^32 - 1 -> InvalidInputError;
 * a bad spec as `checkDatasetSpec` says.
 */
export function datasetSpecToProto(spec: DatasetSpec, options: ToProtoOptions = {}): PrepareDatasetRequest {
  checkDatasetSpec(spec);
  let tokenizer = TokenizerKind.UNSPECIFIED;
  if (spec.tokenizer !== undefined) {
    const t = parseTokenizerSpec(spec.tokenizer);
    if (t.version !== TOKENIZER_VERSION) {
      throw new InvalidInputError(
        `a request names the tokenizer kind only (version ${TOKENIZER_VERSION}), not version ${t.version}`,
        {
          field: 'tokenizer.version',
        },
      );
    }
    tokenizer = t.kind === 'chapter' ? TokenizerKind.CHAPTER : TokenizerKind.RAW;
  }
  let source: PrepareDatasetInit['source'];
  switch (spec.kind) {
    case 'sst2':
      source = { kind: { case: 'sst2', value: { dir: spec.dir } } };
      break;
    case 'builtin': {
      const seed = spec.seed ?? 0;
      if (seed < 0 || seed > 0xffffffff)
        throw new InvalidInputError(`a request's split seed is 0 .. 2^32 - 1, got ${seed}`, { field: 'seed' });
      source = { kind: { case: 'builtin', value: { sets: [...(spec.sets ?? [])], splitSeed: seed } } };
      break;
    }
    case 'tabular':
      source = {
        kind: {
          case: 'tabular',
          value: {
            files: spec.files.map((f) => ({ split: f.split, path: f.path })),
            format: spec.format === undefined ? WireFormat.UNSPECIFIED : TO_WIRE_FORMAT[spec.format],
            textColumn: spec.textColumn ?? '',
            labelColumn: spec.labelColumn ?? '',
          },
        },
      };
      break;
  }
  return create(PrepareDatasetRequestSchema, {
    source,
    tokenizer,
    embedding: { source: options.vectors ?? '' },
    name: options.name ?? '',
  });
}
