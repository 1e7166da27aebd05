import { resolveConfig, serializeConfig } from '@guestnet/core';
import { importer, type Command } from './command.ts';
import { UsageError } from '../usage-error.ts';

export const parseCommand: Command = {
  synopsis: 'parse <config> [--json]',
  summary: 'validate a config string and print its canonical form',
  async run(args, { out }) {
    const json = args.includes('--json');
    const rest = args.filter((a) => a !== '--json');
    if (rest.length !== 1) throw new UsageError('usage: guestnet parse <config> [--json]   (quote the config string)');
    const { descriptor, options, parsed } = await resolveConfig(rest[0]!, { importer });
    if (json) {
      out.write(`${JSON.stringify({ backend: descriptor.name, dialect: parsed.dialect, id: parsed.id, options }, null, 2)}\n`);
    } else {
      out.write(`${serializeConfig(descriptor.name, options, descriptor.options)}\n`);
    }
    return 0;
  },
};
