/**
 * Stack tier, TFTP: `tftp=DIR` serves a file to the guest at the gateway address, port 69, with
 * blksize and tsize negotiated (RFC 2347-2349), over IPv4 and IPv6; verified by hash.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TftpView, emitTftp, parseIpv4Addr, parseIpv6Addr, parseTftp, tftpLen, type TftpRepr } from '@guestnet/wire';
import { Cleanups, guestWith, sha } from './testing/harness.ts';
import type { TestGuest } from './testing/test-guest.ts';

const GW = parseIpv4Addr('10.0.2.2')!;
const GW6 = parseIpv6Addr('fec0::2')!;

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

function tftpDir(content: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), 'slirp-tftp-'));
  writeFileSync(join(dir, 'boot.img'), content);
  cleanups.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function enc(r: TftpRepr): Uint8Array {
  const b = new Uint8Array(tftpLen(r));
  emitTftp(r, b, 0);
  return b;
}

/** A lock-step RRQ client with blksize + tsize; returns the file and what the OACK said. */
async function fetchFile(guest: TestGuest, v6: boolean, name: string, blksize: number, port: number): Promise<{ data: Uint8Array; tsize: number | undefined; blksize: number | undefined }> {
  const send = (r: TftpRepr) => (v6 ? guest.sendUdp6(GW6, 69, enc(r), port) : guest.sendUdp(GW, 69, enc(r), port));
  const next = async (): Promise<TftpRepr> => {
    const u = await guest.recvUdp((x) => x.dstPort === port && x.srcPort === 69, 'TFTP packet');
    const v = new TftpView();
    const r = v.reset(u.data, 0, u.data.length) ? parseTftp(v) : null;
    if (!r) throw new Error('malformed TFTP packet');
    return r;
  };
  send({ op: 'rrq', filename: name, mode: 'octet', options: { blksize, tsize: 0 } });
  const oack = await next();
  if (oack.op !== 'oack') throw new Error(`expected OACK, got ${oack.op}`);
  const bs = oack.options.blksize ?? 512;
  send({ op: 'ack', block: 0 });
  const parts: Uint8Array[] = [];
  for (let expect = 1; ; expect++) {
    const d = await next();
    if (d.op !== 'data') throw new Error(`expected DATA, got ${d.op}`);
    if (d.block !== (expect & 0xffff)) throw new Error(`DATA ${d.block}, expected ${expect}`);
    parts.push(d.data.slice());
    send({ op: 'ack', block: d.block });
    if (d.data.length < bs) break;
  }
  return { data: Buffer.concat(parts), tsize: oack.options.tsize, blksize: oack.options.blksize };
}

describe('slirp stack: TFTP', () => {
  it('serves a file over TFTP at 10.0.2.2:69 with blksize 1428 and tsize, byte-exact', async () => {
    const content = randomBytes(300_000 + 77);
    const { guest } = await guestWith(cleanups, { tftp: tftpDir(content) });
    await guest.dhcp();
    await guest.arp(GW);
    const r = await fetchFile(guest, false, 'boot.img', 1428, 2001);
    expect(r.blksize).toBe(1428);
    expect(r.tsize).toBe(content.length);
    expect(r.data.length).toBe(content.length);
    expect(sha(r.data)).toBe(sha(content));
    expect(guest.badChecksums).toEqual([]);
  });

  it('serves the same file over IPv6 at [fec0::2]:69', async () => {
    const content = randomBytes(50_000);
    const { guest } = await guestWith(cleanups, { tftp: tftpDir(content) });
    await guest.slaac();
    await guest.ndpResolve(GW6);
    const r = await fetchFile(guest, true, 'boot.img', 1024, 2002);
    expect(r.tsize).toBe(content.length);
    expect(sha(r.data)).toBe(sha(content));
    expect(guest.badChecksums).toEqual([]);
  });
});
