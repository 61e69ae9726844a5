/**
 * `ch8 predict`: classifies texts with a running gateway (the text API, ch8.gateway.v1.GatewayService/Predict).
 * Texts come from the arguments, or from standard input one per line (blank lines skipped).
 */
import type { Readable } from 'node:stream';
import { GatewayService } from '@ch8/contracts/gateway';
import { InvalidInputError } from '@ch8/errors';
import { createClient } from '@ch8/service-kit/client';
import { int, str } from '../args.ts';
import type { Command } from '../command.ts';
import { DEFAULT_ADDRESSES } from '../stack.ts';

export interface PredictionView {
  text: string;
  label: string;
  probability: number;
  tokens: string[];
  oov_tokens: string[];
  /** No token of the text is in the model's vocabulary: the gateway's fixed answer (negative, 0.5). */
  no_known_token: boolean;
}

export interface PredictView {
  model_name: string;
  model_version: string;
  predictions: PredictionView[];
}

/** The gateway's address: --addr, else $CH8_GATEWAY_ADDR, else 127.0.0.1:50054. */
export function gatewayAddress(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag ?? env['CH8_GATEWAY_ADDR'] ?? DEFAULT_ADDRESSES.gateway;
}

/** All of a stream as text; undefined for a terminal (nobody is piping texts in). */
export async function readStdin(stream: Readable & { isTTY?: boolean } = process.stdin): Promise<string | undefined> {
  if (stream.isTTY) return undefined;
  stream.setEncoding('utf8');
  let text = '';
  for await (const chunk of stream) text += chunk as string;
  return text;
}

function human(v: PredictView): string {
  const lines = v.predictions.map((p) => {
    const notes: string[] = [];
    if (p.no_known_token) notes.push('no known token');
    else if (p.oov_tokens.length > 0) notes.push(`oov: ${p.oov_tokens.join(' ')}`);
    return `${p.label.padEnd(8)} ${p.probability.toFixed(4)}  ${p.text}${notes.length > 0 ? `  (${notes.join('; ')})` : ''}`;
  });
  return [`model ${v.model_name} version ${v.model_version}`, ...lines].join('\n');
}

/** The command, reading standard input through `stdin` (tests pass their own). */
export function createPredictCommand(stdin: () => Promise<string | undefined> = () => readStdin()): Command {
  return {
    name: 'predict',
    summary: 'classify texts with a running gateway (label, P(positive), tokens used, OOV tokens)',
    problems: [],
    usage:
      'ch8 predict [--addr HOST:PORT] [--model NAME] [--version N] [--json] TEXT...   (or texts on stdin, one per line)',
    flags: {
      addr: { type: 'string', help: 'HOST:PORT of the gateway (default $CH8_GATEWAY_ADDR or 127.0.0.1:50054)' },
      model: { type: 'string', help: "model name (default: the gateway's default model)" },
      version: { type: 'string', help: "model version (default: the model's serving version)" },
      'timeout-ms': { type: 'string', help: 'deadline of the call (default 30000)' },
      json: { type: 'boolean', help: 'one JSON document on standard output' },
    },
    async run(args, io) {
      let texts = args.positionals;
      if (texts.length === 0) {
        const input = await stdin();
        if (input === undefined) {
          throw new InvalidInputError('give the texts as arguments, or one per line on standard input', {
            field: 'TEXT',
          });
        }
        texts = input.split(/\r?\n/).filter((line) => line.trim() !== '');
        if (texts.length === 0) throw new InvalidInputError('standard input holds no text', { field: 'TEXT' });
      }
      const version = str(args, 'version');
      if (version !== undefined && !/^[1-9]\d*$/.test(version)) {
        throw new InvalidInputError(`--version must be a positive integer, got ${JSON.stringify(version)}`, {
          field: 'version',
        });
      }
      const address = gatewayAddress(str(args, 'addr'), io.env);
      const client = createClient(GatewayService, address);
      try {
        const res = await client.predict(
          { modelName: str(args, 'model') ?? '', modelVersion: version ?? '', texts },
          { timeoutMs: int(args, 'timeout-ms', 30_000, 1) },
        );
        const view: PredictView = {
          model_name: res.modelName,
          model_version: res.modelVersion,
          predictions: res.predictions.map((p) => ({
            text: p.text,
            label: p.label,
            probability: p.probability,
            tokens: p.tokens,
            oov_tokens: p.oovTokens,
            no_known_token: p.noKnownToken,
          })),
        };
        io.result(view, human);
        return 0;
      } finally {
        client.close();
      }
    },
  };
}

export const predictCommand: Command = createPredictCommand();
