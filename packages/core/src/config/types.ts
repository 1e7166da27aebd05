/**
 * The parsed (syntactic) form of a config string, before options are validated against a
 * backend's schema.
 */

export type Dialect = 'key' | 'qemu' | 'bhyve';

/** One `key=value` occurrence, with where it stood in the input for error carets. */
export interface RawOption {
  key: string;
  /** The unescaped value; `undefined` for a bare flag (`restrict`). */
  value: string | undefined;
  /** Offset of the key in the input, and of the value (or -1). */
  keyOffset: number;
  valueOffset: number;
}

export interface ParsedConfig {
  /** Backend type as written, lower-cased, before alias resolution (`user`, `slirp`, `tap`, …). */
  type: string;
  typeOffset: number;
  dialect: Dialect;
  /** QEMU's `id=`; not passed to the backend. */
  id?: string;
  /** The bhyve positional argument (`tap0`, `vale0:1`), if any. */
  positional?: string;
  /** Where the positional argument starts in the input (for error carets). */
  positionalOffset?: number;
  options: RawOption[];
  input: string;
}

/**
 * Where a value came from, so a sub-parser (hostfwd, a `;` list item) can point an error at the
 * exact characters of the whole config string. `offset` is the input index of the value's first
 * character; with `escaped` the value was unescaped from the input (each `,` was written `,,`),
 * so indexes are mapped by walking the input rather than by adding.
 */
export interface ValueSource {
  input: string;
  offset: number;
  escaped?: boolean;
}

/** `guestfwd=[tcp]:guestaddr:guestport-cmd:COMMAND` or `-HOST:PORT`. */
export interface GuestFwdRule {
  proto: 'tcp';
  /** The virtual address the guest connects to (inside the guest network). */
  guestAddr: string;
  guestPort: number;
  target: { kind: 'cmd'; command: string } | { kind: 'inet'; addr: string; port: number } | { kind: 'unix'; path: string };
}
