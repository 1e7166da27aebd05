/**
 * The host side of the NAT, as an interface: what the stack needs from the machine it runs on.
 *
 * The stack (DHCP, DNS relay, TCP/UDP NAT, hostfwd, guestfwd, TFTP) talks only to a
 * {@link HostIo}; `node-host-io.ts` implements it with node:net, node:dgram and node:fs, and a
 * browser embedder can implement it over WebSockets/WebTransport relays. Tests use the Node one
 * on 127.0.0.1.
 *
 * Buffer ownership: data handed to `onData`/`onMessage` belongs to the stack — unless the stack
 * sets `borrowsChunks` on its TcpHandlers: then an `onData` chunk is valid only during the call
 * (the HostIo may read every socket into one shared buffer, with no allocation per read). Data
 * passed to `write`/`send` is owned by the HostIo after the call (Node's sockets keep a reference
 * until flushed), so callers hand over bytes they will not reuse.
 */

export interface TcpHandlers {
  onConnect(): void;
  /** Bytes from the host peer; see `borrowsChunks` for how long the chunk is valid. */
  onData(chunk: Uint8Array): void;
  /**
   * True when the stack copies what it keeps from an `onData` chunk before returning: the chunk
   * may then be a view of a buffer the next read overwrites. Honoured by `connectTcp` (in Node, an
   * `onread` buffer shared by the HostIo's sockets); otherwise every chunk is the stack's own.
   */
  readonly borrowsChunks?: boolean;
  /** The peer half-closed (FIN). */
  onEnd(): void;
  /** Writes flushed below the high-water mark again. */
  onDrain(): void;
  /** Closed for good; `err` set when it failed (ECONNREFUSED, ECONNRESET, …). */
  onClose(err: { code: string; message: string } | null): void;
}

export interface HostTcp {
  /** Queue bytes; false when the socket's write buffer is above its high-water mark. */
  write(data: Uint8Array): boolean;
  /** Bytes accepted by `write` but not yet handed to the kernel. */
  readonly pendingBytes: number;
  /** Half-close: send FIN after queued data. */
  end(): void;
  /** Abort: RST where the platform allows it. */
  destroy(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): void;
  readonly localPort: number;
}

export interface UdpHandlers {
  onMessage(data: Uint8Array, from: { address: string; port: number }): void;
  onError(err: { code: string; message: string }): void;
}

export interface HostUdp {
  send(data: Uint8Array, port: number, address: string): void;
  close(): void;
  readonly localPort: number;
}

export interface TcpListener {
  readonly port: number;
  readonly address: string;
  close(): void;
}

export interface UdpListener extends HostUdp {
  readonly address: string;
}

export interface HostAddr {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface HostIo {
  connectTcp(to: HostAddr, h: TcpHandlers): HostTcp;
  /** Connect to a unix socket (guestfwd/hostfwd unix targets). */
  connectUnix(path: string, h: TcpHandlers): HostTcp;
  /** Spawn a command whose stdin/stdout carry a connection (guestfwd cmd:). */
  spawnCommand(command: string, h: TcpHandlers): HostTcp;
  openUdp(family: 4 | 6, h: UdpHandlers): Promise<HostUdp>;
  /** Listen for TCP on the host; rejects with GUESTNET_ADDR_IN_USE / GUESTNET_EPERM. */
  listenTcp(endpoint: { kind: 'inet'; addr: string; port: number } | { kind: 'unix'; path: string }, onConnection: (sock: (h: TcpHandlers) => HostTcp, peer: { address: string; port: number }) => void): Promise<TcpListener>;
  listenUdp(addr: string, port: number, h: UdpHandlers): Promise<UdpListener>;
  /** Read a file under a root for TFTP; null if absent or outside the root. */
  openFile(root: string, name: string): Promise<{ size: number; read(pos: number, dst: Uint8Array): Promise<number>; close(): void } | null>;
  /** Upstream resolvers from the host configuration (/etc/resolv.conf on Unix). */
  systemResolvers(): Promise<HostAddr[]>;
}
