/** Every CLI command, in the order --help lists them. */
import type { Command } from '../command.ts';
import { dataShowCommand, dataStatsCommand } from './data.ts';
import { demoCommand } from './demo.ts';
import { healthCommand } from './health.ts';
import { trainCommand } from './train.ts';
import { vectorsLookupCommand, vectorsPruneCommand } from './vectors.ts';

export const COMMANDS: readonly Command[] = [demoCommand, healthCommand, dataStatsCommand, dataShowCommand, trainCommand, vectorsPruneCommand, vectorsLookupCommand];
