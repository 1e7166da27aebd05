/**
 * Reads a capture written by withPcap with the real tools: tcpdump must parse every block and
 * decode the frames; tshark must see the epb_flags direction (tx = Outbound, rx = Inbound).
 * Skips with a reason when a tool is missing, unless CI is set (then a missing tool fails).
 */
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withPcap } from './pcap.ts';
import { pair } from '../pair.ts';

function have(tool: string): boolean {
  const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
  return r.error === undefined;
}

function requireTool(tool: string): boolean {
  if (have(tool)) return true;
  if (process.env.CI) throw new Error(`${tool} is required in CI (apt-get install ${tool})`);
  console.warn(`skipping: ${tool} not found (install it to run this test; CI=1 makes this a failure)`);
  return false;
}

const mac = (last: number): number[] => [0x52, 0x54, 0x00, 0x12, 0x34, last];

const arpRequest = Uint8Array.from([
  ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], ...mac(0x56), 0x08, 0x06,
  0, 1, 8, 0, 6, 4, 0, 1, ...mac(0x56), 10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2,
]);

const arpReply = Uint8Array.from([
  ...mac(0x56), ...mac(0x02), 0x08, 0x06,
  0, 1, 8, 0, 6, 4, 0, 2, ...mac(0x02), 10, 0, 2, 2, ...mac(0x56), 10, 0, 2, 15,
]);

/** IPv4/UDP 10.0.2.15:5353 → 10.0.2.3:53 with a 4-byte payload (checksums left 0: tools don't care). */
const udp4 = Uint8Array.from([
  ...mac(0x03), ...mac(0x56), 0x08, 0x00,
  0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 3,
  0x14, 0xe9, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4,
]);

async function writeCapture(file: string): Promise<void> {
  const [a, b] = pair();
  const be = withPcap(a, { path: file });
  await be.init(() => {});
  await b.init((f) => {
    if (f[12] === 0x08 && f[13] === 0x06) b.send(arpReply);
  });
  be.send(arpRequest); // outbound, answered inbound
  be.send(udp4); // outbound
  await be.close();
  await b.close();
}

describe('pcapng files read by real tools', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'guestnet-pcap-e2e-'));
  const file = path.join(dir, 'cap.pcapng');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('tcpdump -r decodes every frame', async () => {
    if (!requireTool('tcpdump')) return;
    await writeCapture(file);
    const out = execFileSync('tcpdump', ['-r', file, '-nn'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/ARP, Request who-has 10\.0\.2\.2 tell 10\.0\.2\.15/);
    expect(lines[1]).toMatch(/ARP, Reply 10\.0\.2\.2 is-at 52:54:00:12:34:02/);
    expect(lines[2]).toMatch(/IP 10\.0\.2\.15\.5353 > 10\.0\.2\.3\.53: /);
  });

  it('tshark sees lengths and the epb_flags direction', async () => {
    if (!requireTool('tshark')) return;
    await writeCapture(file);
    const out = execFileSync(
      'tshark',
      ['-r', file, '-T', 'fields', '-E', 'separator=,', '-e', 'frame.len', '-e', 'frame.packet_flags_direction', '-e', 'frame.p2p_dir'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Direction 2 = Outbound (p2p "Sent"), 1 = Inbound (p2p "Received").
    expect(out.trim().split('\n')).toEqual(['42,0x00000002,0', '42,0x00000001,1', '46,0x00000002,0']);
  });
});
