/**
 * The NetBackend contract: one guest NIC connected to something (a NAT stack, a TAP device, a
 * switch port). Modelled on bhyve's `net_backends` and QEMU's net queue.
 *
 * Directions: **tx** is guest → backend ({@link NetBackend.send}), **rx** is backend → guest
 * (the `rx` handler given to {@link NetBackend.init}, or {@link NetBackend.recv} in pull mode).
 *
 * ## Frame ownership
 * - `send(frame)`: the frame belongs to the caller again as soon as `send` returns. A backend that
 *   needs it later (queueing) copies it. The caller may reuse the buffer immediately.
 * - push receive, `rx(frame)`: the frame is valid only for the duration of the call. The backend
 *   may reuse the memory after `rx` returns; a hypervisor that needs the bytes later copies them.
 * - pull receive, `recv(buf)`: the backend copies the next frame into the caller's buffer.
 *
 * ## Virtio-net header
 * When {@link Capabilities.vnetHdrLen} is non-zero (negotiated with `setCapabilities`), every frame
 * in both directions starts with a virtio-net header of that length (10 or 12 bytes,
 * `struct virtio_net_hdr[_mrg_rxbuf]`), and the offloads that were granted apply: tx frames may be
 * TSO/GSO super-frames with partial checksums, rx frames may be large segments marked
 * NEEDS_CSUM. With `vnetHdrLen` 0 (the default) frames are plain Ethernet and fully checksummed.
 *
 * ## Threading
 * Everything runs on the event loop of the thread that created the backend. No method blocks.
 */

/** The delivery verdict of {@link NetBackend.send}, as QEMU's net queue reports it. */
export const Verdict = {
  /** The backend has consumed the frame. */
  Delivered: 'delivered',
  /**
   * The backend took (copied) the frame but is now full: stop sending until the `drain`
   * event fires. Frames sent before then may be dropped with reason `backpressure`.
   */
  Queued: 'queued',
  /** The frame was discarded and counted in `stats().drops` (bad frame, filtered, full, closed). */
  Dropped: 'dropped',
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** Push-mode receive: called once per frame for the guest. The frame is valid only during the call. */
export type RxHandler = (frame: Uint8Array) => void;

/** Events a backend raises towards the hypervisor. All are optional. */
export interface BackendEvents {
  /** After a `Queued` verdict: the backend can take frames again. */
  drain?(): void;
  /** Pull mode: at least one frame is waiting for {@link NetBackend.recv}. */
  readable?(): void;
  /** An asynchronous failure that ends the backend (e.g. a TAP device removed under it). */
  error?(err: Error): void;
}

/** Checksum and segmentation offloads, as virtio-net / TUNSETOFFLOAD name them. */
export interface Offloads {
  /** Frames may carry partial checksums (VIRTIO_NET_HDR_F_NEEDS_CSUM). */
  csum: boolean;
  /** TCP segmentation offload over IPv4 (GSO_TCPV4 super-frames). */
  tso4: boolean;
  /** TCP segmentation offload over IPv6 (GSO_TCPV6 super-frames). */
  tso6: boolean;
  /** The ECN bit in gso_type is understood. */
  ecn: boolean;
  /** UDP fragmentation offload / USO. */
  ufo: boolean;
}

export type VnetHdrLen = 0 | 10 | 12;

export interface Capabilities {
  /** The largest L3 packet (IP MTU) the backend carries; Ethernet frames are mtu + 14 (+ 4 VLAN). */
  mtu: number;
  /** The largest frame the backend will ever hand to `rx` / `recv`, headers included. */
  maxFrameLen: number;
  /** Length of the virtio-net header prefixed to every frame; 0 means none. */
  vnetHdrLen: VnetHdrLen;
  /** Offloads in force. Only meaningful with vnetHdrLen > 0. */
  offloads: Offloads;
  /** The vnet header lengths this backend can speak. */
  supportedVnetHdrLens: readonly VnetHdrLen[];
  /** Offloads this backend could grant. */
  supportedOffloads: Offloads;
  /** Whether {@link NetBackend.hostfwd} works. */
  hostfwd: boolean;
}

/** What a hypervisor asks for; fields left out stay as they are. */
export interface CapabilityRequest {
  vnetHdrLen?: VnetHdrLen;
  offloads?: Partial<Offloads>;
  mtu?: number;
}

export const NO_OFFLOADS: Offloads = Object.freeze({ csum: false, tso4: false, tso6: false, ecn: false, ufo: false });

/** An endpoint of a host forward on the host side. */
export type HostEndpoint =
  | { kind: 'inet'; addr: string; port: number }
  | { kind: 'unix'; path: string };

/** QEMU's `hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`, resolved. */
export interface HostFwdRule {
  proto: 'tcp' | 'udp';
  host: HostEndpoint;
  /** The guest address; an empty string means "the guest's (first DHCP) address". */
  guestAddr: string;
  guestPort: number;
}

/** Runtime management of host forwards (slirp, uip). */
export interface HostFwdApi {
  /**
   * Start listening and forwarding. Resolves with the rule as bound (a host port of 0 is
   * replaced by the port the OS chose). Rejects with GUESTNET_ADDR_IN_USE when the host side is
   * taken, GUESTNET_EXISTS for a duplicate, GUESTNET_UNSUPPORTED where the backend cannot forward.
   */
  add(rule: HostFwdRule): Promise<HostFwdRule>;
  /** Stop a forward; resolves false if no rule matched. Open connections are left to finish. */
  remove(rule: Pick<HostFwdRule, 'proto' | 'host'>): Promise<boolean>;
  /** The rules in force, as bound. */
  list(): HostFwdRule[];
}

/** Counters. Drops are keyed by a short reason ("bad-frame", "backpressure", "restrict", …). */
export interface BackendStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  drops: Record<string, number>;
  /** Open flows by kind ("tcp", "udp", "icmp", …); empty for backends without flows. */
  flows: Record<string, number>;
  /** Anything else a backend counts (leases, retransmits, …). */
  extra?: Record<string, number>;
}

export interface NetBackend {
  /** The backend type as registered ("slirp", "tap", "pair", …). */
  readonly type: string;

  /**
   * Start the backend. With an `rx` handler the backend pushes frames to the guest; with `null`
   * it queues them (bounded) for {@link recv}, and raises `readable`. Resolves when the backend is
   * ready to carry traffic; rejects with a GuestnetError (ADDR_IN_USE, EPERM, …) otherwise.
   * Calling init twice rejects.
   */
  init(rx: RxHandler | null, events?: BackendEvents): Promise<void>;

  /**
   * Hand one Ethernet frame (with the vnet header if negotiated) from the guest to the backend.
   * Never throws. See {@link Verdict}. The caller keeps ownership of `frame`.
   */
  send(frame: Uint8Array): Verdict;

  /**
   * Send several frames. Returns how many were accepted (delivered, queued or dropped as bad);
   * if that is less than `frames.length` the backend is full from that index on and will raise
   * `drain`; the caller resends the rest then.
   */
  sendBatch(frames: readonly Uint8Array[]): number;

  /** Pull mode: the length of the next waiting frame, or 0 if none. */
  peekRecvLen(): number;
  /**
   * Pull mode: copy the next waiting frame into `buf` and return its length; 0 if none.
   * A frame longer than `buf` is dropped (counted as "rx-truncated") and -1 is returned.
   */
  recv(buf: Uint8Array): number;

  /**
   * Stop delivering frames to the guest (bhyve recv_disable). While paused the backend stops
   * reading its host-side sources, so memory stays bounded; frames already produced wait.
   */
  pauseRecv(): void;
  /** Resume delivering (bhyve recv_enable). */
  resumeRecv(): void;

  /** Host forwarding; on backends without it every call rejects with GUESTNET_UNSUPPORTED. */
  readonly hostfwd: HostFwdApi;

  capabilities(): Capabilities;
  /**
   * Negotiate the vnet header and offloads (bhyve set_cap). Returns what is now in force; never
   * grants an offload the backend cannot perform. Throws GUESTNET_UNSUPPORTED for a vnet header
   * length the backend cannot speak.
   */
  setCapabilities(req: CapabilityRequest): Capabilities;

  stats(): BackendStats;

  /** Release every socket, fd, timer and listener. Idempotent; later sends are dropped ("closed"). */
  close(): Promise<void>;
}
