/** Runs a CLI command in-process the way main.ts does, capturing its result, rendered output and logs (for tests). */
import { parseArgs } from './args.ts';
import type { Command, CommandIO } from './command.ts';

export interface CommandRun {
  code: number;
  /** The value passed to io.result (undefined if the command emitted none). */
  value: unknown;
  /** What standard output would carry: the JSON document with --json, else the human rendering. */
  text: string;
  logs: string[];
}

export async function runCommand(
  command: Command,
  argv: string[],
  options: { cwd: string; env?: Record<string, string | undefined> },
): Promise<CommandRun> {
  let value: unknown;
  let emitted = false;
  let text = '';
  const logs: string[] = [];
  const json = argv.includes('--json');
  const io: CommandIO = {
    json,
    cwd: options.cwd,
    env: options.env ?? {},
    log: (l) => void logs.push(l),
    result(v, human) {
      // As main.ts: a command emits exactly one result.
      if (emitted) throw new Error('a command emits one result');
      emitted = true;
      value = v;
      text = json ? JSON.stringify(v) : human(v as never);
    },
  };
  const code = await command.run(parseArgs(argv, command.flags), io);
  return { code, value, text, logs };
}
