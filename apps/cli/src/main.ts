/**
 * The `guestnet` command.
 *
 *   guestnet --help                 this help
 *   guestnet help <backend>         a backend's options, from its schema
 *   guestnet parse <config>         the canonical form of a config string, or the error with a caret
 *   guestnet demo                   parse a config, resolve a backend, move frames through it
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.
 */
import { isGuestnetError, ConfigError } from '@guestnet/core';
import { commands, usage } from './commands/index.ts';
import { UsageError } from './usage-error.ts';

export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h') {
    out.write(await usage());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-V') {
    out.write(`guestnet ${VERSION}\n`);
    return 0;
  }
  const command = commands[cmd];
  if (!command) {
    err.write(`guestnet: unknown command '${cmd}'\n\n${await usage()}`);
    return 2;
  }
  try {
    return await command.run(rest, { out, err });
  } catch (e) {
    return reportError(e, err);
  }
}

export function reportError(e: unknown, err: NodeJS.WritableStream): number {
  if (e instanceof UsageError) {
    err.write(`guestnet: ${e.message}\n`);
    return 2;
  }
  if (e instanceof ConfigError) {
    err.write(`guestnet: ${e.code}: ${e.message}\n${indent(e.caret())}\n`);
    if (e.hint) err.write(`  hint: ${e.hint}\n`);
    return 2;
  }
  if (isGuestnetError(e)) {
    err.write(`guestnet: ${e.code}: ${e.message}\n`);
    if (e.hint) err.write(`  hint: ${e.hint}\n`);
    return e.code === 'GUESTNET_BAD_CONFIG' ? 2 : 1;
  }
  err.write(`guestnet: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return 1;
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

export const VERSION = '0.1.0';

// Run when executed directly (tsx apps/cli/src/main.ts, or the bin launcher).
const invokedDirectly = (() => {
  const arg = process.argv[1] ?? '';
  return /apps[\\/]cli[\\/](src[\\/]main\.ts|bin[\\/]guestnet(\.js)?|dist[\\/]main\.js)$/.test(arg) || arg.endsWith('/guestnet');
})();
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.exitCode = reportError(e, process.stderr);
    },
  );
}
