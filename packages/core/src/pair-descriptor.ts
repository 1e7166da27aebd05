/**
 * `backend=pair,name=N`: config-string access to {@link pair}. The first backend created with a
 * given name is one end, the second is the other end; the name is released when both ends are
 * closed. Useful to connect two guests (or a test harness and a guest) in one process.
 */
import type { NetBackend } from './backend.ts';
import type { BackendDescriptor } from './schema.ts';
import { ErrorCode, GuestnetError } from './errors.ts';
import { pair } from './pair.ts';

const pending = new Map<string, NetBackend>();
const taken = new Set<string>();

export const pairDescriptor: BackendDescriptor = {
  name: 'pair',
  summary: 'two endpoints back to back, joined by name (tests, in-process guests)',
  options: [
    { name: 'name', type: 'string', default: 'default', doc: 'the pair to join; the first backend with a name gets one end, the second the other' },
    { name: 'mtu', type: 'int', min: 68, max: 65535, default: 1500, doc: 'IP MTU of the link' },
  ],
  create(options) {
    const name = String(options.name);
    const mtu = Number(options.mtu);
    const waiting = pending.get(name);
    if (waiting) {
      pending.delete(name);
      taken.add(name);
      return waiting;
    }
    if (taken.has(name)) {
      throw new GuestnetError(ErrorCode.Exists, `pair '${name}' already has both ends`, { hint: 'use another name=' });
    }
    const [a, b] = pair({ mtu });
    pending.set(name, b);
    let open = 2;
    for (const end of [a, b]) {
      const close = end.close.bind(end);
      let closed = false;
      end.close = async () => {
        if (!closed && --open === 0) {
          taken.delete(name);
          if (pending.get(name) === b) pending.delete(name);
        }
        closed = true;
        await close();
      };
    }
    return a;
  },
};
