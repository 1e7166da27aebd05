import type { Command } from './command.ts';
import { helpCommand, usage } from './help.ts';
import { parseCommand } from './parse.ts';
import { demoCommand } from './demo.ts';

export const commands: Record<string, Command> = {
  help: helpCommand,
  parse: parseCommand,
  demo: demoCommand,
};

export { usage };
