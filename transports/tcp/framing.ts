/**
 * Length-prefixed framing: every frame is a 4-byte big-endian payload length
 * followed by that many payload bytes.
 *
 *   +--------+--------+--------+--------+----------------------+
 *   |        payload length (u32 BE)    |  payload (length B)  |
 *   +--------+--------+--------+--------+----------------------+
 *
 * {@link FrameDecoder} reassembles frames from socket chunks split at any
 * byte boundary and rejects an oversize length as soon as the 4 header bytes
 * are in, before buffering the body. {@link Outbox} writes frames into a
 * shared slab so that every frame produced in one turn leaves in one write.
 */
import { ProtocolError } from '../../src/errors.js';

/** Bytes of the length prefix. */
export const HEADER_BYTES = 4;
/** Default `maxFrameBytes`: 16 MiB of payload. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Streaming frame decoder. Feed it socket chunks with {@link push}; it calls
 * `onFrame(buf, start, end)` with each complete payload, `buf[start..end)`
 * (the chunk itself, not a copy: copy what you keep; no view is allocated per
 * frame). Throws `ProtocolError` on a length above `maxFrameBytes`.
 */
export class FrameDecoder {
  readonly #max: number;
  readonly #onFrame: (buf: Buffer, start: number, end: number) => void;
  #chunks: Buffer[] = [];
  #size = 0;
  /** Bytes needed before the next parse can make progress. */
  #need = HEADER_BYTES;
  #stopped = false;

  constructor(maxFrameBytes: number, onFrame: (buf: Buffer, start: number, end: number) => void) {
    this.#max = maxFrameBytes;
    this.#onFrame = onFrame;
  }

  /** Bytes buffered for an incomplete frame. */
  get buffered(): number {
    return this.#size;
  }

  /** Stops delivering frames (the connection is closing). */
  stop(): void {
    this.#stopped = true;
    this.#chunks = [];
    this.#size = 0;
  }

  push(chunk: Buffer): void {
    if (this.#stopped || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size < this.#need) return;
    const buf = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    this.#size = 0;
    let off = 0;
    for (;;) {
      if (this.#stopped) return;
      const left = buf.length - off;
      if (left < HEADER_BYTES) { this.#need = HEADER_BYTES; break; }
      const len = buf.readUInt32BE(off);
      if (len > this.#max) {
        this.stop();
        throw new ProtocolError(`Frame of ${len} bytes exceeds maxFrameBytes (${this.#max}): send smaller frames or raise maxFrameBytes on both sides`);
      }
      if (left - HEADER_BYTES < len) { this.#need = HEADER_BYTES + len; break; }
      const start = off + HEADER_BYTES;
      off = start + len;
      this.#onFrame(buf, start, off);
    }
    if (off < buf.length && !this.#stopped) {
      this.#chunks.push(buf.subarray(off));
      this.#size = buf.length - off;
    }
  }
}

/** Encodes one frame into a fresh buffer (tests, journal snapshots). */
export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, HEADER_BYTES);
  return out;
}

const SLAB_BYTES = 64 * 1024;

/**
 * Collects outgoing frames in slabs; {@link take} hands back what was written
 * since the last take, as few buffers as possible. Bytes already taken are
 * never overwritten, so a socket may hold them while later frames are added.
 *
 *   slab: [ taken ... | pending (start..pos) | free ... ]
 */
export class Outbox {
  #slab: Buffer = Buffer.allocUnsafe(0);
  #start = 0;
  #pos = 0;
  #pieces: Buffer[] = [];
  #bytes = 0;
  /** Slab offset of the last frame's payload while it is not taken yet, else -1. */
  #last = -1;

  /** Bytes written and not yet taken. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Reserves room for a frame of at most `maxPayload` bytes and returns the
   * payload offset in {@link slab} (read the slab after this call: it may be
   * a new one); call {@link commit} with the real size. An offset, not a
   * `{ buf, offset }` pair: that was one object per frame.
   */
  reserve(maxPayload: number): number {
    const need = HEADER_BYTES + maxPayload;
    if (this.#slab.length - this.#pos < need) {
      this.#retire();
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, need));
      this.#start = this.#pos = 0;
    }
    return this.#pos + HEADER_BYTES;
  }

  /**
   * Makes room for `extra` more bytes in the frame reserved last, of which
   * `used` payload bytes are written: moves it to a bigger slab when needed.
   * Returns the payload offset in {@link slab} to continue with.
   */
  extend(used: number, extra: number): number {
    const frame = this.#pos;
    if (this.#slab.length - frame - HEADER_BYTES - used >= extra) return frame + HEADER_BYTES;
    this.#retire();
    const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * (HEADER_BYTES + used + extra)));
    this.#slab.copy(next, 0, frame, frame + HEADER_BYTES + used);
    this.#slab = next;
    this.#start = this.#pos = 0;
    return HEADER_BYTES;
  }

  /**
   * Payload offset in {@link slab} of the last frame written, while it can
   * still be changed in place (it was not taken); -1 when there is none.
   * Its payload length is the u32 before it.
   */
  get lastOffset(): number {
    return this.#last;
  }

  /** The slab being written: the one {@link reserve}, {@link extend} and {@link lastOffset} offsets point into. */
  get slab(): Buffer {
    return this.#slab;
  }

  /** Finishes the frame reserved last: writes its length prefix. */
  commit(payloadBytes: number): void {
    this.#slab.writeUInt32BE(payloadBytes, this.#pos);
    this.#last = this.#pos + HEADER_BYTES;
    this.#pos += HEADER_BYTES + payloadBytes;
    this.#bytes += HEADER_BYTES + payloadBytes;
  }

  /**
   * Takes back the frame committed last, not taken yet (one the peer could not
   * accept: over its maxFrameBytes). Returns its payload size, or -1 when there is none.
   */
  dropLast(): number {
    if (this.#last < 0) return -1;
    const frame = this.#last - HEADER_BYTES;
    const size = this.#pos - frame;
    this.#pos = frame;
    this.#bytes -= size;
    this.#last = -1;
    return size - HEADER_BYTES;
  }

  /** Everything written since the last take (empty when nothing was). */
  take(): Buffer[] {
    this.#retire();
    const out = this.#pieces;
    this.#pieces = [];
    this.#bytes = 0;
    return out;
  }

  #retire(): void {
    this.#last = -1;
    if (this.#pos > this.#start) this.#pieces.push(this.#slab.subarray(this.#start, this.#pos));
    this.#start = this.#pos;
  }
}
