import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Slack's side of Socket Mode, on loopback: the WebSocket that `apps.connections.open` hands out, and
 * the envelope protocol Slack speaks on it. Slack says `hello`, then sends `events_api`,
 * `slash_commands` and `interactive` envelopes; the app acks each with `{envelope_id, payload?}`.
 * An events envelope not acked in time is sent again with `retry_attempt` (on whichever connection
 * is up by then), and Slack asks the app to reconnect with a `disconnect` message. A test can lose
 * acks and cut the connection to see that nothing is lost or done twice.
 *
 * @slack/socket-mode dials with undici's WebSocket, so no WebSocket server comes with the
 * dependencies; the few parts of RFC 6455 a server needs are below.
 */
export type EnvelopeType = 'events_api' | 'slash_commands' | 'interactive';

export interface Envelope {
  envelope_id: string;
  type: EnvelopeType;
  payload: Record<string, unknown>;
  accepts_response_payload: boolean;
  retry_attempt?: number;
  retry_reason?: string;
}

export interface SocketAck {
  envelope_id: string;
  payload?: unknown;
  /** The connection (its number, from 1) the ack came on. */
  connection: number;
}

export interface SocketConnectionRecord {
  number: number;
  ticket: string;
  /** Why it closed: the app closed it, or the test dropped it. */
  closed?: 'by the app' | 'dropped';
}

export interface DeliveryOptions {
  /** Slack's retry counter for the first attempt, as when a test plays a retry itself. */
  retry?: number;
  /** Acks of this delivery to throw away, as if they were lost on the way to Slack. */
  loseAcks?: number;
}

export interface DeliveryResult {
  ack: SocketAck;
  /** Every envelope sent for this delivery, retries included, in order. */
  attempts: Envelope[];
}

/** Slack answers an events envelope within 3 s or retries it, at most 3 times. */
const ACK_TIMEOUT_MS = 3_000;
const MAX_RETRIES = 3;
/** Bounds what one client frame may carry; an app's ack is a few hundred bytes. */
const MAX_FRAME_BYTES = 1 << 20;
const PING_INTERVAL_MS = 10_000;
const CLOSE_WAIT_MS = 2_000;

interface Pending {
  attempts: Envelope[];
  lose: number;
  timer?: NodeJS.Timeout;
  resolve(result: DeliveryResult): void;
  reject(error: Error): void;
}

export class FakeSlackSocket {
  readonly connections: SocketConnectionRecord[] = [];
  readonly acks: SocketAck[] = [];
  /** Acks thrown away (DeliveryOptions.loseAcks). */
  readonly lostAcks: SocketAck[] = [];
  /** Acks naming no envelope Slack is waiting on (already acked, or never sent). */
  readonly strayAcks: SocketAck[] = [];
  /** Every envelope sent, on any connection. */
  readonly sent: Array<Envelope & { connection: number }> = [];
  private readonly tickets = new Set<string>();
  private readonly pending = new Map<string, Pending>();
  private readonly waiting: Envelope[] = [];
  private readonly sockets = new Set<WebSocketConnection>();
  private live?: { socket: WebSocketConnection; number: number };
  private readonly changes = new EventEmitter();

  constructor(private readonly appId = 'ADOCKET') {}

  /** `apps.connections.open`: a one-use URL, as Slack's are. */
  open(baseUrl: string): string {
    const ticket = randomBytes(12).toString('hex');
    this.tickets.add(ticket);
    return `${baseUrl.replace(/^http/, 'ws')}/link/?ticket=${ticket}&app_id=${this.appId}`;
  }

  get connected(): boolean {
    return this.live !== undefined;
  }

  /** Takes an HTTP upgrade on /link/; refuses an unknown or used ticket as Slack does, before the upgrade. */
  accept(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'http://slack.invalid');
    const ticket = url.searchParams.get('ticket') ?? '';
    const key = request.headers['sec-websocket-key'];
    if (url.pathname !== '/link/' || !this.tickets.delete(ticket) || typeof key !== 'string' || request.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const record: SocketConnectionRecord = { number: this.connections.length + 1, ticket };
    this.connections.push(record);
    const connection = new WebSocketConnection(socket, head);
    this.sockets.add(connection);
    const pings = setInterval(() => connection.ping(), PING_INTERVAL_MS);
    pings.unref();
    connection.on('text', (text: string) => this.received(text, record.number));
    connection.on('closed', (dropped: boolean) => {
      clearInterval(pings);
      this.sockets.delete(connection);
      record.closed ??= dropped ? 'dropped' : 'by the app';
      if (this.live?.socket === connection) this.live = undefined;
      this.changes.emit('change');
    });
    connection.sendText(JSON.stringify({
      type: 'hello', num_connections: this.sockets.size,
      debug_info: { host: 'applink-fake', build_number: 1, approximate_connection_time: 18060 },
      connection_info: { app_id: this.appId },
    }));
    this.live = { socket: connection, number: record.number };
    this.changes.emit('change');
    for (const envelope of this.waiting.splice(0)) this.send(envelope);
  }

  /**
   * Sends an envelope and settles when the app acks it. Events are sent again (retry_attempt 1, 2,
   * 3) while unacked; commands and interactions are not, as Slack does not retry those. Envelopes
   * wait while no connection is up, and go out after the next `hello`; the app's time to ack starts then.
   */
  deliver(type: EnvelopeType, payload: Record<string, unknown>, options: DeliveryOptions = {}): Promise<DeliveryResult> {
    return new Promise<DeliveryResult>((resolve, reject) => {
      const first = this.envelope(type, payload, options.retry);
      const pending: Pending = { attempts: [first], lose: options.loseAcks ?? 0, resolve, reject };
      this.pending.set(first.envelope_id, pending);
      this.send(first);
    });
  }

  /** Slack's `disconnect` message: the app closes this connection and opens another. */
  disconnect(reason: 'refresh_requested' | 'warning' | 'link_disabled' = 'refresh_requested'): void {
    const live = this.live;
    if (!live) throw new Error('no Socket Mode connection is up to disconnect');
    // Slack sends nothing more on a connection it asked the app to leave.
    this.live = undefined;
    live.socket.sendText(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake' } }));
  }

  /** Cuts the live connection without a close frame, as a firewall or a dead proxy does. */
  drop(): void {
    const live = this.live;
    if (!live) throw new Error('no Socket Mode connection is up to drop');
    this.live = undefined;
    live.socket.destroy();
  }

  /** Resolves once `count` connections have said hello (and the latest is up). */
  async waitForConnection(count: number, limitMs = 60_000): Promise<void> {
    const ready = () => this.connections.length >= count && this.live !== undefined;
    if (ready()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.changes.off('change', check);
        reject(new Error(`Socket Mode: ${this.connections.length} connection(s) opened, waited for ${count}; is the app connecting (apps.connections.open)?`));
      }, limitMs);
      const check = () => {
        if (!ready()) return;
        clearTimeout(timer);
        this.changes.off('change', check);
        resolve();
      };
      this.changes.on('change', check);
    });
  }

  close(): void {
    for (const pending of new Set(this.pending.values())) {
      clearTimeout(pending.timer);
      pending.reject(new Error('the fake Slack closed before the app acked'));
    }
    this.pending.clear();
    for (const socket of this.sockets) socket.destroy();
  }

  private envelope(type: EnvelopeType, payload: Record<string, unknown>, retry?: number): Envelope {
    const envelope: Envelope = { envelope_id: randomUUID(), type, payload, accepts_response_payload: type !== 'events_api' };
    if (type === 'events_api') {
      envelope.retry_attempt = retry ?? 0;
      envelope.retry_reason = retry ? 'timeout' : '';
    }
    return envelope;
  }

  private send(envelope: Envelope): void {
    if (!this.live) {
      this.waiting.push(envelope);
      return;
    }
    this.sent.push({ ...envelope, connection: this.live.number });
    this.live.socket.sendText(JSON.stringify(envelope));
    const pending = this.pending.get(envelope.envelope_id);
    if (pending) this.awaitAck(pending, envelope);
  }

  private awaitAck(pending: Pending, last: Envelope): void {
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      const retries = pending.attempts.length - 1;
      if (last.type !== 'events_api' || retries >= MAX_RETRIES) {
        for (const attempt of pending.attempts) this.pending.delete(attempt.envelope_id);
        pending.reject(new Error(`the app did not ack ${last.type} envelope ${last.envelope_id} in ${ACK_TIMEOUT_MS} ms${retries ? ` (after ${retries} retries)` : ''}`));
        return;
      }
      const retry = this.envelope(last.type, last.payload, (last.retry_attempt ?? 0) + 1);
      pending.attempts.push(retry);
      this.pending.set(retry.envelope_id, pending);
      this.send(retry);
    }, ACK_TIMEOUT_MS);
    pending.timer.unref();
  }

  private received(text: string, connection: number): void {
    let message: { envelope_id?: unknown; payload?: unknown };
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message.envelope_id !== 'string') return;
    const ack: SocketAck = { envelope_id: message.envelope_id, connection };
    if (message.payload !== undefined) ack.payload = message.payload;
    const pending = this.pending.get(ack.envelope_id);
    if (!pending) {
      this.strayAcks.push(ack);
      return;
    }
    if (pending.lose > 0) {
      pending.lose -= 1;
      this.lostAcks.push(ack);
      return;
    }
    this.acks.push(ack);
    clearTimeout(pending.timer);
    for (const attempt of pending.attempts) this.pending.delete(attempt.envelope_id);
    pending.resolve({ ack, attempts: pending.attempts });
  }
}

const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/**
 * One server-side WebSocket: frames in (masked, as clients must send them), frames out (unmasked).
 * Emits `text` for each whole text message and `closed` once, with whether it ended without the
 * close handshake.
 */
class WebSocketConnection extends EventEmitter {
  private buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closeSent = false;
  private closeReceived = false;
  private ended = false;

  constructor(private readonly socket: Duplex, head: Buffer) {
    super();
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', () => this.finish(true));
    socket.on('close', () => this.finish(!(this.closeSent && this.closeReceived)));
    if (head.length) this.read(head);
  }

  sendText(text: string): void {
    this.write(OPCODE.text, Buffer.from(text, 'utf8'));
  }

  ping(): void {
    this.write(OPCODE.ping, Buffer.from('fake-slack'));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private write(opcode: number, payload: Buffer): void {
    if (this.ended || this.closeSent || this.socket.destroyed) return;
    let header: Buffer;
    if (payload.length < 126) {
      header = Buffer.from([0x80 | opcode, payload.length]);
    } else if (payload.length < 65_536) {
      header = Buffer.alloc(4);
      header.writeUInt8(0x80 | opcode, 0);
      header.writeUInt8(126, 1);
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header.writeUInt8(0x80 | opcode, 0);
      header.writeUInt8(127, 1);
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    this.socket.write(Buffer.concat([header, payload]));
  }

  private read(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const frame = this.nextFrame();
      if (frame === 'incomplete') return;
      if (frame === 'invalid') {
        this.destroy();
        return;
      }
      this.handle(frame.fin, frame.opcode, frame.payload);
    }
  }

  private nextFrame(): { fin: boolean; opcode: number; payload: Buffer } | 'incomplete' | 'invalid' {
    if (this.buffer.length < 2) return 'incomplete';
    const fin = (this.buffer[0] & 0x80) !== 0;
    const opcode = this.buffer[0] & 0x0f;
    const masked = (this.buffer[1] & 0x80) !== 0;
    let length = this.buffer[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (this.buffer.length < 4) return 'incomplete';
      length = this.buffer.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (this.buffer.length < 10) return 'incomplete';
      const long = this.buffer.readBigUInt64BE(2);
      if (long > BigInt(MAX_FRAME_BYTES)) return 'invalid';
      length = Number(long);
      offset = 10;
    }
    if (!masked || length > MAX_FRAME_BYTES) return 'invalid';
    if (this.buffer.length < offset + 4 + length) return 'incomplete';
    const mask = this.buffer.subarray(offset, offset + 4);
    const payload = Buffer.from(this.buffer.subarray(offset + 4, offset + 4 + length));
    for (let index = 0; index < payload.length; index += 1) payload[index] ^= mask[index % 4];
    this.buffer = this.buffer.subarray(offset + 4 + length);
    return { fin, opcode, payload };
  }

  private handle(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case OPCODE.text:
      case OPCODE.binary:
      case OPCODE.continuation:
        this.fragments.push(payload);
        if (!fin) return;
        {
          const message = Buffer.concat(this.fragments);
          this.fragments = [];
          this.emit('text', message.toString('utf8'));
        }
        return;
      case OPCODE.ping:
        this.write(OPCODE.pong, payload);
        return;
      case OPCODE.pong:
        return;
      case OPCODE.close:
        this.closeReceived = true;
        if (!this.closeSent) this.write(OPCODE.close, payload.subarray(0, 2));
        this.closeSent = true;
        this.socket.end();
        setTimeout(() => this.socket.destroy(), CLOSE_WAIT_MS).unref();
        return;
      default:
        this.destroy();
    }
  }

  private finish(dropped: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.emit('closed', dropped);
  }
}
