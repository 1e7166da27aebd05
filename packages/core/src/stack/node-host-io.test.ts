import { describe, it, expect } from 'vitest';
import * as net from 'node:net';
import { createNodeHostIo } from './node-host-io.ts';
import type { HostTcp, TcpHandlers } from './host-io.ts';

/** A loopback server whose accepted sockets report how they ended. */
async function server(): Promise<{ port: number; ends: Promise<string>; close: () => void }> {
  let report!: (s: string) => void;
  const ends = new Promise<string>((r) => (report = r));
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', () => {});
    s.on('end', () => report('fin'));
    s.on('error', (e: NodeJS.ErrnoException) => report(e.code ?? 'error'));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, ends, close: () => srv.close() };
}

function connect(port: number): Promise<{ t: HostTcp; closed: Promise<{ code: string } | null> }> {
  return new Promise((resolve) => {
    let onClose!: (e: { code: string } | null) => void;
    const closed = new Promise<{ code: string } | null>((r) => (onClose = r));
    const h: TcpHandlers = {
      onConnect: () => resolve({ t, closed }),
      onData() {},
      onEnd() {},
      onDrain() {},
      onClose: (e) => onClose(e),
    };
    const t = createNodeHostIo().connectTcp({ address: '127.0.0.1', port, family: 4 }, h);
  });
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> => Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]);

describe('node-host-io', () => {
  it('destroy() right after end() still closes the socket (no leaked handle while the shutdown is in flight)', async () => {
    const s = await server();
    const { t, closed } = await connect(s.port);
    t.write(new Uint8Array(10));
    t.end();
    t.destroy();
    expect(await within(closed, 2000)).not.toBe('timeout');
    s.close();
  });

  it('destroy() of an open connection resets it (the peer sees ECONNRESET)', async () => {
    const s = await server();
    const { t, closed } = await connect(s.port);
    t.destroy();
    expect(await within(closed, 2000)).not.toBe('timeout');
    expect(await within(s.ends, 2000)).toBe('ECONNRESET');
    s.close();
  });
});
