/**
 * The CLI's command contract. A command writes its result through `io.result`: with --json it is the only thing
 * on standard output (one JSON document); otherwise `human` renders it. Logs and progress go to standard error.
 */
import type { Flags, Parsed } from './args.ts';

export interface CommandIO {
  json: boolean;
  /** Progress and diagnostics: always standard error. */
  log(line: string): void;
  /** The command's result (called once). */
  result(value: unknown, human: (value: never) => string): void;
  /** The working directory the user ran the command from (paths resolve against it). */
  cwd: string;
  env: Record<string, string | undefined>;
  /** Standard error when it is a terminal (live progress lines); undefined otherwise. */
  terminal?: { write(text: string): void; columns(): number };
}

export interface Command {
  /** e.g. "health" or "vectors prune". */
  name: string;
  summary: string;
  /** The chapter's problems this command answers, e.g. [70]. */
  problems: number[];
  usage: string;
  flags: Flags;
  /** Exit code: 0 success, 1 failure of the work, 2 bad usage. */
  run(args: Parsed, io: CommandIO): Promise<number>;
}
