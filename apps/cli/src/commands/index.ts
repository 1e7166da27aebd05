import type { Command } from './command.ts';
import { helpCommand, usage } from './help.ts';
import { parseCommand } from './parse.ts';
import { demoCommand } from './demo.ts';
import { attachCommand } from './attach.ts';
import { serveCommand } from './serve.ts';
import { hostfwdCommand } from './hostfwd.ts';
import { statsCommand } from './stats.ts';
import { switchCommand } from './switch.ts';

export const commands: Record<string, Command> = {
  help: helpCommand,
  parse: parseCommand,
  demo: demoCommand,
  attach: attachCommand,
  serve: serveCommand,
  hostfwd: hostfwdCommand,
  stats: statsCommand,
  switch: switchCommand,
};

export { usage };
