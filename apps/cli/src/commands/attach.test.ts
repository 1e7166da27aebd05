import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { configureAddresses, parseAttachArgs, resolveNetns } from './attach.ts';
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

describe('guestnet attach arguments', () => {
  it('parses every flag, both spellings, and the CONFIG', () => {
    expect(parseAttachArgs(['--netns', '/run/netns/g', '--tap=tap0', '--mtu', '65520', '--configure', '--vnet-hdr=off', '--ready-fd', '3', 'backend=slirp,restrict=on'])).toEqual({
      netns: '/run/netns/g',
      tap: 'tap0',
      mtu: 65520,
      configure: true,
      vnetHdr: 'off',
      readyFd: 3,
      config: 'backend=slirp,restrict=on',
    });
  });

  it('leaves CONFIG unset when none is given (slirp is the default)', () => {
    expect(parseAttachArgs(['--netns', '42', '--tap', 'tap0']).config).toBeUndefined();
  });

  it.each([
    [['--tap', 'tap0'], /--netns and --tap are required/],
    [['--netns', 'x', '--tap', 'tap0', '--mtu', '67'], /--mtu takes an integer 68..65535/],
    [['--netns', 'x', '--tap', 'tap0', '--mtu'], /--mtu needs a value/],
    [['--netns', 'x', '--tap', 'a-name-way-too-long'], /not a valid interface name/],
    [['--netns', 'x', '--tap', 'ta/p'], /not a valid interface name/],
    [['--netns', 'x', '--tap', 'tap0', '--vnet-hdr', 'maybe'], /auto, on or off/],
    [['--netns', 'x', '--tap', 'tap0', '--bogus'], /unknown option --bogus/],
    [['--netns', 'x', '--tap', 'tap0', 'slirp', 'user'], /one CONFIG at most/],
  ])('rejects %j', (args, re) => {
    expect(() => parseAttachArgs(args)).toThrow(UsageError);
    expect(() => parseAttachArgs(args)).toThrow(re);
  });

  it('exits 2 with the usage on bad arguments, through main', async () => {
    const out = sink();
    const err = sink();
    expect(await main(['attach', '--tap', 'tap0'], out, err)).toBe(2);
    expect(err.text).toMatch(/usage: guestnet attach --netns PATH\|PID --tap NAME/);
  });
});

describe('guestnet attach namespaces', () => {
  it('maps a PID to /proc/PID/ns/net', () => {
    expect(resolveNetns(String(process.pid))).toBe(`/proc/${process.pid}/ns/net`);
  });

  it('fails with GUESTNET_NOT_FOUND and a hint for a namespace that does not exist', () => {
    expect(() => resolveNetns('gn-surely-not-there-xyz')).toThrow(expect.objectContaining({ code: 'GUESTNET_NOT_FOUND', hint: expect.stringMatching(/ip netns add/) }));
    expect(() => resolveNetns('999999999')).toThrow(expect.objectContaining({ code: 'GUESTNET_NOT_FOUND', hint: expect.stringMatching(/process/) }));
  });
});

describe('guestnet attach --configure addresses', () => {
  it('uses the slirp4netns defaults: guest .100/24, gateway .2, DNS .3', () => {
    expect(configureAddresses({})).toEqual({ address: '10.0.2.100', prefixLen: 24, gateway: '10.0.2.2', dns: '10.0.2.3' });
  });

  it('follows the backend net, host and dns options, as host parts or full addresses', () => {
    expect(configureAddresses({ net: '192.168.76.0/24', host: '.1', dns: '192.168.76.53' })).toEqual({
      address: '192.168.76.100',
      prefixLen: 24,
      gateway: '192.168.76.1',
      dns: '192.168.76.53',
    });
    expect(configureAddresses({ net: '10.8.0.0/16', host: '.0.2', dns: '3' })).toEqual({ address: '10.8.0.100', prefixLen: 16, gateway: '10.8.0.2', dns: '10.8.0.3' });
  });

  it('picks the last usable address on a network too small for .100', () => {
    expect(configureAddresses({ net: '10.0.2.0/28', host: '.2', dns: '.3' }).address).toBe('10.0.2.14');
  });
});
