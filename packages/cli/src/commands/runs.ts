/**
 * `ch8 runs list|show|watch|cancel`: the trainer service's runs (default address 127.0.0.1:50053 or
 * $CH8_TRAINER_ADDR). `watch` replays a run's events and follows it live until it ends (exit 0 when it SUCCEEDED).
 */
import { RunState, TrainerService } from '@ch8/contracts/trainer';
import { InvalidInputError } from '@ch8/errors';
import { createClient, type Client } from '@ch8/service-kit/client';
import { str, type Parsed } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';
import { createProgress } from '../progress.ts';
import { runView, showRunEvents, type RunView } from '../runs.ts';

const FLAGS = {
  addr: { type: 'string', help: 'HOST:PORT of the trainer service (default $CH8_TRAINER_ADDR or 127.0.0.1:50053)' },
  json: { type: 'boolean', help: 'one JSON document on standard output' },
} as const;

type Trainer = Client<typeof TrainerService>;

/** Runs `work` with a client of the trainer at --addr (or $CH8_TRAINER_ADDR, or the default), closed after. */
async function withTrainer<T>(args: Parsed, io: CommandIO, work: (client: Trainer) => Promise<T>): Promise<T> {
  const client = createClient(TrainerService, str(args, 'addr') ?? io.env['CH8_TRAINER_ADDR'] ?? '127.0.0.1:50053');
  try {
    return await work(client);
  } finally {
    client.close();
  }
}

function runId(args: Parsed): string {
  const [id, ...rest] = args.positionals;
  if (id === undefined || rest.length > 0) throw new InvalidInputError('give exactly one RUN_ID', { field: 'run_id' });
  return id;
}

function line(r: RunView): string {
  const acc = r.best_epoch > 0 ? `dev ${r.dev_accuracy.toFixed(4)} (epoch ${r.best_epoch})` : '';
  const where = r.model_dir ?? (r.error ? `${r.error_code ?? ''} ${r.error}`.trim() : '');
  return `${r.run_id.padEnd(34)} ${r.state.padEnd(10)} ${r.model.padEnd(13)} ${String(r.epochs.length).padStart(3)} ep  ${acc.padEnd(24)} ${where}`;
}

function detail(r: RunView): string {
  const lines = [
    line(r),
    `  backend ${r.backend || '-'}: ${r.device || '-'}; data set ${r.dataset_id || '-'}; data wait ${(100 * r.data_wait_share).toFixed(1)}%`,
  ];
  for (const e of r.epochs) {
    const dev =
      e.dev_accuracy === undefined ? '' : `  dev loss ${e.dev_loss?.toFixed(4)} acc ${e.dev_accuracy.toFixed(4)}`;
    lines.push(
      `  epoch ${e.epoch}: train loss ${e.train_loss.toFixed(4)} acc ${e.train_accuracy.toFixed(4)}${dev}  ${Math.round(e.train_examples_per_second)} ex/s`,
    );
  }
  for (const [name, s] of Object.entries(r.splits))
    lines.push(
      `  ${name}: accuracy ${s.accuracy.toFixed(4)} P ${s.precision.toFixed(4)} R ${s.recall.toFixed(4)} F1 ${s.f1.toFixed(4)} ${JSON.stringify(s.confusion)}`,
    );
  return lines.join('\n');
}

export const runsListCommand: Command = {
  name: 'runs list',
  summary: "the trainer service's runs, newest last",
  problems: [],
  usage: 'ch8 runs list [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const res = await withTrainer(args, io, (client) => client.listRuns({}));
    io.result({ runs: res.runs.map(runView) }, (v: { runs: RunView[] }) =>
      v.runs.length === 0 ? 'no runs' : v.runs.map(line).join('\n'),
    );
    return 0;
  },
};

export const runsShowCommand: Command = {
  name: 'runs show',
  summary: 'one run: state, per-epoch metrics, final scores, export',
  problems: [],
  usage: 'ch8 runs show RUN_ID [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const id = runId(args);
    const res = await withTrainer(args, io, (client) => client.getRun({ runId: id }));
    io.result(runView(res.run!), detail);
    return 0;
  },
};

export const runsWatchCommand: Command = {
  name: 'runs watch',
  summary: "follow a run's progress until it ends (past events first)",
  problems: [],
  usage: 'ch8 runs watch RUN_ID [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const id = runId(args);
    const progress = createProgress(io);
    const run = await withTrainer(args, io, async (client) => {
      try {
        await showRunEvents(id, client.watchRun({ runId: id }), progress);
      } finally {
        progress.done();
      }
      return (await client.getRun({ runId: id })).run!;
    });
    io.result(runView(run), detail);
    return run.state === RunState.SUCCEEDED ? 0 : 1;
  },
};

export const runsCancelCommand: Command = {
  name: 'runs cancel',
  summary: 'cancel a pending or running run (it exports nothing)',
  problems: [],
  usage: 'ch8 runs cancel RUN_ID [--addr HOST:PORT] [--json]',
  flags: FLAGS,
  async run(args, io) {
    const id = runId(args);
    const res = await withTrainer(args, io, (client) => client.cancelRun({ runId: id }));
    io.result(runView(res.run!), line);
    return 0;
  },
};
