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
  options: RawOption[];
  input: string;
}

/** `guestfwd=[tcp]:guestaddr:guestport-cmd:COMMAND` or `-HOST:PORT`. */
export interface GuestFwdRule {
  proto: 'tcp';
  /** The virtual address the guest connects to (inside the guest network). */
  guestAddr: string;
  guestPort: number;
  target: { kind: 'cmd'; command: string } | { kind: 'inet'; addr: string; port: number } | { kind: 'unix'; path: string };
}
