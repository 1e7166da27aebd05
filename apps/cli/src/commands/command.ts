export interface CommandIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface Command {
  /** One line for the usage screen. */
  summary: string;
  /** Usage synopsis, e.g. `parse <config>`. */
  synopsis: string;
  run(args: string[], io: CommandIo): Promise<number>;
}

/** Import backends from the CLI's own context, where they are dependencies. */
export const importer = (s: string): Promise<unknown> => import(s);
