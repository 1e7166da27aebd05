/**
 * Coded errors for the control path.
 *
 * Every error guestnet throws on the control path (config parsing, backend creation, hostfwd
 * management, init/close) is a {@link GuestnetError} with a stable string `code` a program can
 * switch on, a human message, and where possible a `hint` that says what to do about it.
 * The data path never throws: bad frames are dropped and counted in {@link BackendStats.drops}.
 */

export const ErrorCode = {
  BadConfig: 'GUESTNET_BAD_CONFIG',
  BackendNotInstalled: 'GUESTNET_BACKEND_NOT_INSTALLED',
  BadBackend: 'GUESTNET_BAD_BACKEND',
  EPERM: 'GUESTNET_EPERM',
  ENODEV: 'GUESTNET_ENODEV',
  AddrInUse: 'GUESTNET_ADDR_IN_USE',
  Unsupported: 'GUESTNET_UNSUPPORTED',
  NotInitialized: 'GUESTNET_NOT_INITIALIZED',
  Closed: 'GUESTNET_CLOSED',
  NotFound: 'GUESTNET_NOT_FOUND',
  Exists: 'GUESTNET_EXISTS',
  Limit: 'GUESTNET_LIMIT',
  Protocol: 'GUESTNET_PROTOCOL',
  Io: 'GUESTNET_IO',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface GuestnetErrorOptions {
  /** What the user can do about it. Printed after the message by the CLI. */
  hint?: string;
  cause?: unknown;
}

export class GuestnetError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  constructor(code: ErrorCode, message: string, options: GuestnetErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GuestnetError';
    this.code = code;
    this.hint = options.hint;
  }
}

/**
 * A config string could not be parsed or validated. `offset` is the 0-based index into `input`
 * where the problem starts and `length` how many characters it spans (for a caret line).
 */
export class ConfigError extends GuestnetError {
  readonly input: string;
  readonly offset: number;
  readonly length: number;
  constructor(message: string, input: string, offset: number, length = 1, hint?: string) {
    super(ErrorCode.BadConfig, message, hint === undefined ? {} : { hint });
    this.name = 'ConfigError';
    this.input = input;
    this.offset = offset;
    this.length = Math.max(1, length);
  }

  /** The input, and a caret line under the offending characters. */
  caret(): string {
    return `${this.input}\n${' '.repeat(this.offset)}${'^'.repeat(this.length)}`;
  }
}

export class BackendNotInstalledError extends GuestnetError {
  readonly packageName: string;
  constructor(type: string, packageName: string, cause?: unknown) {
    super(ErrorCode.BackendNotInstalled, `backend '${type}' is not installed`, {
      hint: `install it with: pnpm add ${packageName}   (or npm install ${packageName})`,
      cause,
    });
    this.name = 'BackendNotInstalledError';
    this.packageName = packageName;
  }
}

export class UnsupportedError extends GuestnetError {
  constructor(message: string, hint?: string) {
    super(ErrorCode.Unsupported, message, hint === undefined ? {} : { hint });
    this.name = 'UnsupportedError';
  }
}

export class AddrInUseError extends GuestnetError {
  readonly address: string;
  constructor(address: string, cause?: unknown) {
    super(ErrorCode.AddrInUse, `address ${address} is already in use`, {
      hint: 'pick another host port, or stop the program that holds it',
      cause,
    });
    this.name = 'AddrInUseError';
    this.address = address;
  }
}

export class PermissionError extends GuestnetError {
  constructor(message: string, hint: string, cause?: unknown) {
    super(ErrorCode.EPERM, message, { hint, cause });
    this.name = 'PermissionError';
  }
}

export function isGuestnetError(e: unknown): e is GuestnetError {
  return e instanceof GuestnetError;
}
