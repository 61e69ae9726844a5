/** Every CLI command, in the order --help lists them. */
import type { Command } from '../command.ts';
import { talksToServices, withTlsFlags } from '../tls.ts';
import { chapterCommand } from './chapter.ts';
import { dataShowCommand, dataStatsCommand } from './data.ts';
import { evalCommand } from './eval.ts';
import { healthCommand } from './health.ts';
import {
  modelsKeepCommand,
  modelsListCommand,
  modelsPinCommand,
  modelsReloadCommand,
  modelsUnpinCommand,
} from './models.ts';
import { predictCommand } from './predict.ts';
import { runsCancelCommand, runsListCommand, runsShowCommand, runsWatchCommand } from './runs.ts';
import { serveCommand } from './serve.ts';
import { trainCommand } from './train.ts';
import { vectorsLookupCommand, vectorsPruneCommand } from './vectors.ts';

/** Every command; those that dial a running service take --tls-ca, --tls-cert and --tls-key (tls.ts). */
export const COMMANDS: readonly Command[] = [
  chapterCommand,
  healthCommand,
  dataStatsCommand,
  dataShowCommand,
  trainCommand,
  evalCommand,
  runsListCommand,
  runsShowCommand,
  runsWatchCommand,
  runsCancelCommand,
  serveCommand,
  predictCommand,
  modelsListCommand,
  modelsPinCommand,
  modelsUnpinCommand,
  modelsKeepCommand,
  modelsReloadCommand,
  vectorsPruneCommand,
  vectorsLookupCommand,
].map((c) => (talksToServices(c) ? withTlsFlags(c) : c));
