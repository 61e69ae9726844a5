#!/usr/bin/env node
/**
 * ch8: the command line of the project. Work commands run in-process on the same packages the services use;
 * --addr sends the same work to a running service. With --json, standard output carries exactly one JSON document.
 */
import process from 'node:process';
import { isKnownError } from '@ch8/errors';
import { helpText, parseArgs } from './args.ts';
import type { Command, CommandIO } from './command.ts';
import { COMMANDS } from './commands/index.ts';

const PROBLEMS: [number, string, string][] = [
  [70, 'embedding matrix with <pad> row 0, token <-> id maps, pruned vocabulary', 'ch8 vectors prune | vectors lookup'],
  [71, 'SST-2 to token ids, OOV tokens and empty examples dropped', 'ch8 data stats | data show'],
  [72, 'bag of words: mean of embeddings, logistic regression', 'ch8 train --model bow-frozen'],
  [73, 'training with E frozen, loss shown while training', 'ch8 train --model bow-frozen'],
  [74, 'accuracy on dev', 'ch8 train (dev accuracy after each epoch)'],
  [75, 'collate: pad with id 0, longest first', 'ch8 data show --collate'],
  [76, 'mini-batch training', 'ch8 train --batch-size 64'],
  [77, 'training on the GPU', 'ch8 train --backend webgpu | tfjs-node-gpu'],
  [78, 'fine-tuning the embeddings', 'ch8 train --model bow-finetune'],
  [79, 'other architectures: MLP, CNN, BiLSTM, GRU, attention', 'ch8 train --model cnn'],
];

function topHelp(): string {
  const lines = ['usage: ch8 <command> [options]   (ch8 <command> --help for its options)', '', 'commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(16)} ${c.summary}`);
  lines.push('', 'chapter 8 (NLP 100 Knock 2025), problem -> command:');
  const available = new Set(COMMANDS.map((c) => c.name.split(' ')[0]));
  for (const [n, what, cmd] of PROBLEMS) {
    const first = cmd.replace(/^ch8 /, '').split(/[ |]/)[0]!;
    lines.push(`  ${n}  ${what.padEnd(72)} ${cmd}${available.has(first) ? '' : '  (not built yet)'}`);
  }
  lines.push('  70-79  all of them through the four services, with a results table and report.html: ch8 chapter');
  lines.push('', 'Every command takes --json: exactly one JSON document on standard output, logs on standard error.');
  return lines.join('\n');
}

function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  // Longest match first: "vectors prune" before "vectors".
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (command) return { command, rest: argv.slice(words) };
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  // `pnpm ch8` runs at the workspace root; paths the user typed are relative to where they typed them.
  const cwd = process.env['INIT_CWD'] ?? process.cwd();
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(topHelp() + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    process.stderr.write(`ch8: unknown command "${argv.slice(0, 2).join(' ')}"\n\n${topHelp()}\n`);
    return 2;
  }
  const { command, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.summary}\n\n${helpText(`usage: ${command.usage}`, command.flags)}\n`);
    return 0;
  }
  const json = rest.includes('--json');
  let emitted = false;
  const io: CommandIO = {
    json,
    cwd,
    env: process.env,
    ...(process.stderr.isTTY
      ? {
          terminal: {
            write: (text: string) => void process.stderr.write(text),
            columns: () => process.stderr.columns ?? 80,
          },
        }
      : {}),
    log: (line) => void process.stderr.write(line + '\n'),
    result(value, human) {
      if (emitted) throw new Error('a command emits one result');
      emitted = true;
      process.stdout.write(json ? JSON.stringify(value) + '\n' : human(value as never) + '\n');
    },
  };
  let args;
  try {
    args = parseArgs(rest, command.flags);
  } catch (e) {
    process.stderr.write(
      `ch8 ${command.name}: ${(e as Error).message}\n${helpText(`usage: ${command.usage}`, command.flags)}\n`,
    );
    return 2;
  }
  try {
    return await command.run(args, io);
  } catch (e) {
    const message =
      isKnownError(e) || (e as Error)?.name === 'GrpcError' ? (e as Error).message : String((e as Error)?.stack ?? e);
    process.stderr.write(`ch8 ${command.name}: ${message}\n`);
    if (json && !emitted)
      process.stdout.write(
        JSON.stringify({ ok: false, error: { name: (e as Error)?.name, message: (e as Error)?.message } }) + '\n',
      );
    return isKnownError(e) && (e as Error).name === 'InvalidInputError' ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
