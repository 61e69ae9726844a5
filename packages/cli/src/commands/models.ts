/**
 * `ch8 models list|pin|unpin|keep|reload`: the versions a running gateway serves, and its version policies
 * (ch8.gateway.v1.GatewayService ListModels, SetVersionPolicy, ReloadModels).
 */
import { GatewayService, VersionState, type ModelEntry, type ModelPolicy } from '@ch8/contracts/gateway';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { str, type Parsed } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';
import { gatewayAddress } from './predict.ts';

const FLAGS = {
  addr: { type: 'string', help: 'HOST:PORT of the gateway (default $CH8_GATEWAY_ADDR or 127.0.0.1:50054)' },
  json: { type: 'boolean', help: 'one JSON document on standard output' },
} as const;

export interface VersionView {
  name: string;
  version: string;
  state: string;
  kind: string;
  dev_accuracy: number;
  default: boolean;
  tokenizer: string;
  vocab_hash: string;
  error?: string;
}

export interface PolicyView {
  model: string;
  /** "pinned" or "latest". */
  policy: string;
  /** The pinned version, or how many newest versions serve. */
  value: number;
  overridden: boolean;
}

function versionView(m: ModelEntry): VersionView {
  const v: VersionView = {
    name: m.name,
    version: m.version,
    state: (VersionState[m.state] ?? 'UNSPECIFIED').toLowerCase(),
    kind: m.kind,
    dev_accuracy: m.devAccuracy,
    default: m.defaultVersion,
    tokenizer: m.tokenizer,
    vocab_hash: m.vocabHash,
  };
  if (m.error !== '') v.error = m.error;
  return v;
}

function policyView(p: ModelPolicy): PolicyView {
  const c = p.policy?.choice;
  return {
    model: p.modelName,
    policy: c?.case === 'pinnedVersion' ? 'pinned' : 'latest',
    value: c?.value ?? 1,
    overridden: p.overridden,
  };
}

function versionLine(v: VersionView): string {
  const acc = v.dev_accuracy > 0 ? `dev ${v.dev_accuracy.toFixed(4)}` : '';
  return `${v.name.padEnd(20)} ${v.version.padStart(4)}  ${v.state.padEnd(9)} ${(v.default ? '*' : ' ').padEnd(2)}${v.kind.padEnd(13)} ${acc.padEnd(11)} ${v.error ?? ''}`.trimEnd();
}

function policyLine(p: PolicyView): string {
  const what = p.policy === 'pinned' ? `pinned to version ${p.value}` : `newest ${p.value}`;
  return `${p.model}: ${what}${p.overridden ? ' (set with ch8 models pin/keep)' : ''}`;
}

function gateway(args: Parsed, io: CommandIO) {
  return createClient(GatewayService, gatewayAddress(str(args, 'addr'), io.env));
}

function positionals(args: Parsed, names: string[]): string[] {
  if (args.positionals.length !== names.length) {
    throw new InvalidInputError(`expected ${names.join(' ')}, got ${args.positionals.length} argument(s)`, {
      field: names[args.positionals.length] ?? names.at(-1)!,
    });
  }
  return args.positionals;
}

function positiveInt(text: string, field: string): number {
  if (!/^[1-9]\d*$/.test(text))
    throw new InvalidInputError(`must be a positive integer, got ${JSON.stringify(text)}`, { field });
  return Number(text);
}

export const modelsListCommand: Command = {
  name: 'models list',
  summary: "a running gateway's model versions (state, default *, failures) and version policies",
  problems: [],
  usage: 'ch8 models list [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const client = gateway(args, io);
    try {
      const res = await client.listModels({});
      const view = {
        default_model: res.defaultModel,
        versions: res.models.map(versionView),
        policies: res.policies.map(policyView),
      };
      io.result(view, (v: typeof view) =>
        v.versions.length === 0
          ? 'no model in the repository'
          : [...v.versions.map(versionLine), '', ...v.policies.map(policyLine)].join('\n'),
      );
      return 0;
    } finally {
      client.close();
    }
  },
};

async function setPolicy(
  args: Parsed,
  io: CommandIO,
  name: string,
  policy: { choice: { case: 'pinnedVersion' | 'latest'; value: number } } | undefined,
): Promise<number> {
  const client = gateway(args, io);
  try {
    const res = await client.setVersionPolicy(policy === undefined ? { modelName: name } : { modelName: name, policy });
    const view = { policy: policyView(res.policy!), versions: res.models.map(versionView) };
    io.result(view, (v: typeof view) => [policyLine(v.policy), ...v.versions.map(versionLine)].join('\n'));
    return 0;
  } finally {
    client.close();
  }
}

export const modelsPinCommand: Command = {
  name: 'models pin',
  summary: 'serve only this version of a model (rollback); it is loaded before the command returns',
  problems: [],
  usage: 'ch8 models pin NAME VERSION [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const [name, version] = positionals(args, ['NAME', 'VERSION']);
    return setPolicy(args, io, name!, { choice: { case: 'pinnedVersion', value: positiveInt(version!, 'VERSION') } });
  },
};

export const modelsUnpinCommand: Command = {
  name: 'models unpin',
  summary: "back to the gateway's configured policy for a model (normally: its newest version)",
  problems: [],
  usage: 'ch8 models unpin NAME [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const [name] = positionals(args, ['NAME']);
    return setPolicy(args, io, name!, undefined);
  },
};

export const modelsKeepCommand: Command = {
  name: 'models keep',
  summary: 'serve the newest N versions of a model (the newest answers requests that name no version)',
  problems: [],
  usage: 'ch8 models keep NAME N [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const [name, n] = positionals(args, ['NAME', 'N']);
    return setPolicy(args, io, name!, { choice: { case: 'latest', value: positiveInt(n!, 'N') } });
  },
};

export const modelsReloadCommand: Command = {
  name: 'models reload',
  summary: 'make a running gateway rescan its model repository now',
  problems: [],
  usage: 'ch8 models reload [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const client = gateway(args, io);
    try {
      const res = await client.reloadModels({});
      const view = { versions: res.models.map(versionView) };
      io.result(view, (v: typeof view) => v.versions.map(versionLine).join('\n') || 'no model in the repository');
      return 0;
    } finally {
      client.close();
    }
  },
};
