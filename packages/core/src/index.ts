/**
 * @guestnet/core — the browser-safe entry: the NetBackend contract, config strings, the registry,
 * middleware (pcapng to a sink, tracer, fault injector), stream framing, and pair().
 * Node-only helpers (pcap to a file, stream/dgram socket glue) are in `@guestnet/core/node`.
 */
export * from './backend.ts';
export * from './errors.ts';
export * from './schema.ts';
export { BaseBackend, type BaseBackendOptions } from './base-backend.ts';
export type { Dialect, RawOption, ParsedConfig, GuestFwdRule, ValueSource } from './config/types.ts';
export { parseConfig } from './config/parse.ts';
export { parseHostFwd, formatHostFwd, parseGuestFwd, formatGuestFwd, DEFAULT_HOSTFWD_ADDR } from './config/hostfwd.ts';
export { validateOptions } from './config/validate.ts';
export { serializeConfig, canonicalize, formatOptionValue } from './config/serialize.ts';
export { suggest, editDistance } from './config/suggest.ts';
export {
  createBackend,
  resolveConfig,
  loadBackend,
  registerBackend,
  unregisterBackend,
  canonicalType,
  packageFor,
  KNOWN_BACKENDS,
  type Importer,
  type LoadOptions,
  type ResolvedConfig,
} from './registry.ts';
export { pair, type PairOptions } from './pair.ts';
export { pairDescriptor } from './pair-descriptor.ts';
export { WrappedBackend, type WrappedBackendOptions } from './middleware/wrap.ts';
export { PcapngWriter, PcapDirection, type PcapSink, type PcapngWriterOptions } from './middleware/pcapng.ts';
export { withPcap, type PcapTarget, type PcapOptions, type PcapBackend } from './middleware/pcap.ts';
export { withTracer, describeFrame, type TracerOptions } from './middleware/tracer.ts';
export { withFaultInjector, Xoshiro128ss, type FaultInjectorOptions } from './middleware/fault-injector.ts';
export {
  StreamFrameDecoder,
  StreamFrameWriter,
  encodeStreamFrame,
  writeStreamFrame,
  DEFAULT_STREAM_MAX_FRAME,
  type StreamFrameDecoderOptions,
  type StreamFrameWriterOptions,
} from './transports/stream.ts';
export { connectBackends, negotiateVnet, type ConnectOptions, type Connection, type ConnectionStats, type DirectionStats } from './connect.ts';
export { WebSocketFrameDecoder, WebSocketFrameWriter, WsOpcode, WsCloseCode, writeWebSocketFrame, encodeWebSocketFrame, webSocketHeaderLen, encodeClosePayload, parseClosePayload, DEFAULT_WS_MAX_MESSAGE, type WebSocketFrameDecoderOptions, type WebSocketDecoderEvents, type WebSocketFrameWriterOptions } from './transports/websocket.ts';
// The user-mode stack infrastructure shared by the NAT/proxy backends (slirp, uip): timers, the
// host-I/O interface, the frame builder, the TCP segment representation, the DHCPv4 server.
export { TimerQueue, TimerEntry, ManualClock, realClock, type Clock } from './stack/timers.ts';
export type { HostIo, HostTcp, HostUdp, TcpHandlers, UdpHandlers, TcpListener, UdpListener, HostAddr } from './stack/host-io.ts';
export { FrameOut, MAX_FRAME, type OutputHost, type OutputCaps } from './stack/frame-out.ts';
export { TcpFlag, TCP_MAX_SACK_BLOCKS, createSegmentOut, clearSegmentOut, resetFor, type TcpSegmentIn, type TcpSegmentOut, type TcpPayloadSource, type TcpOutput } from './stack/tcp-segment.ts';
export { DhcpServer, DHCP_LEASE_SECONDS, OFFER_HOLD_MS, DECLINE_HOLD_MS, type DhcpLease, type DhcpServerConfig, type DhcpServerContext } from './stack/dhcp-server.ts';
export { HostForwards, type HostFwdContext, type HostFwdTcpTarget, type HostFwdUdpTarget } from './stack/hostfwd.ts';
export { parseUpstream, parseAllow, allowed4, type UpstreamAddr, type AllowCidr } from './stack/addr-options.ts';
