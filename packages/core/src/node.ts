/**
 * @guestnet/core/node — helpers that need Node: QEMU stream framing over a Duplex (net.Socket),
 * QEMU dgram over a UDP socket, pcapng written to a file.
 */
export { attachStream, type AttachStreamOptions, type StreamAttachment, type StreamCounters, type StreamEnd } from './transports/stream-node.ts';
export { attachDgram, type AttachDgramOptions, type DgramAttachment, type DgramCounters, type DgramPeer } from './transports/dgram.ts';
export { openPcapFile, type PcapFileSink } from './middleware/pcap-file.ts';
export { attachWebSocket, webSocketAccept, parseUpgradeRequest, answerUpgrade, type AttachWebSocketOptions, type WebSocketAttachment, type WebSocketCounters, type WebSocketEnd, type UpgradeRequest } from './transports/websocket-node.ts';
export { createNodeHostIo, parseResolvConf } from './stack/node-host-io.ts';
