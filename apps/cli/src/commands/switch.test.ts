import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createBackend, type NetBackend } from '@guestnet/core';
import { parseSwitchArgs, startSwitch, type SwitchHandle } from './switch.ts';
import { importer } from './command.ts';
import { main } from '../main.ts';
import { UsageError } from '../usage-error.ts';

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += String(chunk);
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

describe('guestnet switch arguments', () => {
  it('parses NAME and every flag, both spellings', () => {
    expect(parseSwitchArgs(['vale0', '--uplink', 'backend=slirp,restrict=on', '--uplink-port=3', '--socket', '/tmp/s.sock', '--ports', '8', '--slots=256', '--bufsize', '4096'])).toEqual({
      name: 'vale0',
      uplink: 'backend=slirp,restrict=on',
      uplinkPort: 3,
      socket: '/tmp/s.sock',
      ports: 8,
      slots: 256,
      bufSize: 4096,
    });
    expect(parseSwitchArgs(['vale1'])).toEqual({ name: 'vale1', uplinkPort: 0 });
  });

  it.each([
    [[], /a switch NAME is required/],
    [['vale0', 'backend=slirp'], /one NAME only/],
    [['../x'], /not a switch name/],
    [['vale0', '--uplink'], /--uplink needs a value/],
    [['vale0', '--uplink='], /--uplink needs a backend config/],
    [['vale0', '--uplink-port', '1'], /--uplink-port without --uplink/],
    [['vale0', '--uplink', 'slirp', '--uplink-port', '254'], /--uplink-port takes an integer 0\.\.253/],
    [['vale0', '--uplink', 'slirp', '--uplink-port', '4', '--ports', '4'], /outside --ports 4/],
    [['vale0', '--ports', '0'], /--ports takes an integer 1\.\.254/],
    [['vale0', '--ports', 'many'], /--ports takes an integer/],
    [['vale0', '--slots', '1'], /--slots takes an integer 2\.\.65536/],
    [['vale0', '--bufsize', '1001'], /multiple of 8/],
    [['vale0', '--bogus'], /unknown option '--bogus'/],
  ])('rejects %j', (args, re) => {
    expect(() => parseSwitchArgs(args as string[])).toThrow(UsageError);
    expect(() => parseSwitchArgs(args as string[])).toThrow(re);
  });

  it('exits 2 with a message on bad arguments, and 0 with the help', async () => {
    const out = sink();
    const err = sink();
    expect(await main(['switch'], out, err)).toBe(2);
    expect(err.text).toMatch(/switch NAME is required/);
    expect(await main(['switch', '--help'], out, err)).toBe(0);
    expect(out.text).toMatch(/QEMU cannot attach to the switch directly/);
  });

  it('reports a bad uplink config with exit 2 before listening', async () => {
    const err = sink();
    expect(await main(['switch', 'vale0', '--uplink', 'backend=slirp,bogus=1', '--socket', join(tmpdir(), `never-${process.pid}.sock`)], sink(), err)).toBe(2);
    expect(err.text).toMatch(/GUESTNET_BAD_CONFIG/);
    expect(existsSync(join(tmpdir(), `never-${process.pid}.sock`))).toBe(false);
  });

  it('is listed in the usage screen', async () => {
    const out = sink();
    await main(['--help'], out, sink());
    expect(out.text).toMatch(/switch NAME \[--uplink CONFIG\]/);
  });
});

describe('guestnet switch (in-process)', () => {
  let handle: SwitchHandle | null = null;
  let dir = '';
  const backends: NetBackend[] = [];

  afterEach(async () => {
    for (const b of backends.splice(0)) await b.close();
    await handle?.stop();
    handle = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the switch with an uplink backend: a client port reaches the uplink and back', async () => {
    dir = mkdtempSync(join(tmpdir(), 'guestnet-switch-cli-'));
    const name = `valecli${process.pid}`;
    const socket = join(dir, 'sw.sock');
    const pairName = `uplink-${process.pid}`;
    handle = await startSwitch({ name, uplink: `backend=pair,name=${pairName}`, uplinkPort: 0, socket });
    expect(handle.lines[0]).toBe(`guestnet: switch ${name} ready on unix:${socket} (ports 0..253, uplink backend=pair,name=${pairName} on port 0)`);
    expect(handle.lines[1]).toContain(`backend=${name}:1,switch=${socket}`);
    expect(handle.lines[2]).toMatch(/guestnet serve --listen unix:\S+ 'backend=.*:2,switch=/);

    const far = await createBackend(`backend=pair,name=${pairName}`, { importer });
    backends.push(far);
    const atFar: Uint8Array[] = [];
    await far.init((f) => atFar.push(f.slice()));
    const port = await createBackend(`backend=${name}:1,switch=${socket}`, { importer });
    backends.push(port);
    const atPort: Uint8Array[] = [];
    await port.init((f) => atPort.push(f.slice()));

    const hello = new Uint8Array(60).fill(0xff, 0, 6);
    hello.set([2, 0, 0, 0, 0, 1], 6);
    hello[12] = 0x88;
    hello[13] = 0xb5;
    expect(port.send(hello)).toBe('delivered');
    const until = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    };
    await until(() => atFar.length > 0);
    expect(atFar[0]).toEqual(hello);
    const reply = new Uint8Array(100);
    reply.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 0x88, 0xb5], 0);
    far.send(reply);
    await until(() => atPort.length > 0);
    expect(atPort[0]).toEqual(reply);
    expect(handle.server.clients().map((c) => c.port)).toEqual([1]);

    await handle.stop();
    handle = null;
    expect(existsSync(socket)).toBe(false);
  });
});
