/**
 * Durability for the broker: an append-only log of accepted changes, written
 * in groups (all records of one event-loop turn: one write, one fdatasync)
 * before the broker confirms any of them, plus snapshots for compaction.
 *
 *   dataDir/
 *     snapshot-v2        records of a full BrokerCore snapshot, for log generation G
 *     journal-v2-G.log   groups appended since that snapshot
 *
 * The `v2` is the file format (frame layout of protocol version 2). A dataDir
 * holding files of another format is refused with a clear error, never
 * replayed: read with the wrong layout, a log would look torn and be cut.
 *
 *   a group:  record frame ... record frame | commit frame { n, crc32 of the records }
 *
 * Replay applies only groups whose commit frame is present and whose
 * checksum matches; a torn tail is cut off. Compaction serialises the core
 * (which already holds the effects of the open group), writes it to
 * `snapshot.tmp`, fsyncs, renames it over `snapshot`, fsyncs the directory,
 * then starts `journal-(G+1).log` and deletes the old log.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, unlinkSync } from 'node:fs';
import { close, fdatasync, fsync, open, writev } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { debuglog } from 'node:util';
import { ProtocolError } from '../../src/errors.js';
import type { Batch, Outcome, StateRecord, TaskMessage } from '../../src/transport.js';
import type { BrokerCore, CoreSnapshot } from '../memory/broker-core.js';
import { FrameDecoder, Outbox } from './framing.js';
import { MsgType, splitPayload, writeFrame } from './protocol.js';
import {
  arr, batchHasBinary, int, isBinary, obj, outcomeHasBinary, readBatch, readOutcome, readPacked, readRecord, readTask, str, strings, stringifyWithBins,
} from './wire-values.js';

const log = debuglog('millwright');
const writevAsync = promisify(writev);
const syncAsync = promisify(fdatasync);
const fsyncAsync = promisify(fsync);
const openAsync = promisify(open);
const closeAsync = promisify(close);

/** Record types beyond the protocol's (publish, settle, setState, revoke reuse theirs). */
const Rec = { commit: 120, meta: 100, states: 101, tasks: 102, chords: 103, closed: 104, revoked: 105 } as const;
const CHUNK = 1000;
/** Snapshot frame size past which a chunk of several items is split. */
const CHUNK_BYTES = 64 << 20;
/** The journal's file format; its files are named after it. */
const FORMAT = 'v2';
const SNAPSHOT = `snapshot-${FORMAT}`;
const logName = (gen: number): string => `journal-${FORMAT}-${gen}.log`;
const LOG_NAME = new RegExp(`^journal-${FORMAT}-\\d+\\.log$`);
/** Files of other formats: this build cannot read them. */
const FOREIGN = /^(snapshot(-v\d+)?|journal-(v\d+-)?\d+\.log)$/;
const MAX_RECORD = 1 << 30;

/** A change to journal. `attempt` identifies which copy of a retried task a settle acked. */
export type JournalRecord =
  | { readonly t: 'publish'; readonly batch: Batch }
  | { readonly t: 'settle'; readonly mid: string; readonly attempt: number; readonly outcome: Outcome }
  | { readonly t: 'setState'; readonly record: StateRecord }
  | { readonly t: 'revoke'; readonly id: string };

export interface JournalOptions {
  /** Log bytes past which the next commit compacts. Default 64 MiB. */
  readonly compactBytes: number;
  /** fdatasync each group (default true); false only for benchmarks of the write path. */
  readonly fsync: boolean;
}

interface Group { readonly pieces: Buffer[]; readonly done: () => void; readonly fail: (err: Error) => void }

export class Journal {
  readonly #dir: string;
  readonly #options: JournalOptions;
  #fd: number;
  #gen: number;
  #size: number;
  #out = new Outbox();
  #records = 0;
  #queue: Group[] = [];
  #writing = false;
  #failed: Error | undefined;

  private constructor(dir: string, fd: number, gen: number, size: number, options: JournalOptions) {
    this.#dir = dir;
    this.#fd = fd;
    this.#gen = gen;
    this.#size = size;
    this.#options = options;
  }

  /** Opens `dir` (creating it), replays snapshot and log into `core`, and returns the journal. */
  static open(dir: string, core: BrokerCore, options: JournalOptions): Journal {
    mkdirSync(dir, { recursive: true });
    const foreign = readdirSync(dir).filter((f) => FOREIGN.test(f) && f !== SNAPSHOT && !LOG_NAME.test(f));
    if (foreign.length > 0) {
      throw new ProtocolError(`dataDir ${dir} holds a journal of another format (${foreign.join(', ')}; this broker writes ${FORMAT}): start the millwright version that wrote it to drain it, or move those files away to start empty`);
    }
    const snapPath = join(dir, SNAPSHOT);
    let gen = 0;
    if (existsSync(snapPath)) {
      const snap = readSnapshot(readFileSync(snapPath));
      gen = snap.gen;
      core.load(snap.snapshot);
    }
    const logPath = join(dir, logName(gen));
    const acked = new Set<string>();
    if (existsSync(logPath)) {
      const good = replayLog(readFileSync(logPath), (r) => apply(core, r, acked));
      if (good < statSync(logPath).size) { log('journal: cutting a torn tail at byte %d of %s', good, logPath); truncateSync(logPath, good); }
    }
    if (acked.size > 0) core.retain((m) => !acked.has(copyKey(m.id, m.attempt)));
    for (const f of readdirSync(dir)) if (LOG_NAME.test(f) && f !== logName(gen)) unlinkSync(join(dir, f));
    const fd = openSync(logPath, 'a');
    return new Journal(dir, fd, gen, statSync(logPath).size, options);
  }

  /** Bytes appended or queued and not yet durable. */
  get backlog(): number {
    let n = this.#out.bytes;
    for (const g of this.#queue) for (const p of g.pieces) n += p.length;
    return n;
  }

  /** True when records were appended since the last commit. */
  get dirty(): boolean {
    return this.#records > 0;
  }

  /** True when the next commit should compact instead of appending. */
  get wantsCompaction(): boolean {
    return this.#size >= this.#options.compactBytes && !this.#writing && this.#queue.length === 0;
  }

  append(record: JournalRecord): void {
    const bins: Uint8Array[] = [];
    switch (record.t) {
      case 'publish': writeFrame(this.#out, MsgType.publish, 0, stringifyWithBins(record.batch, batchHasBinary(record.batch), bins), bins); break;
      case 'settle': writeFrame(this.#out, MsgType.settle, 0, stringifyWithBins({ mid: record.mid, attempt: record.attempt, outcome: record.outcome }, outcomeHasBinary(record.outcome), bins), bins); break;
      case 'setState': writeFrame(this.#out, MsgType.setState, 0, stringifyWithBins(record.record, isBinary(record.record.result), bins), bins); break;
      case 'revoke': writeFrame(this.#out, MsgType.revoke, 0, JSON.stringify({ sid: record.id }), bins); break;
    }
    this.#records++;
  }

  /** Makes every appended record durable (one group); resolves once written and synced. */
  commit(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#records === 0) return Promise.resolve();
    const pieces = this.#out.take();
    let crc = 0;
    for (const p of pieces) crc = crc32(p, crc);
    writeFrame(this.#out, Rec.commit, 0, JSON.stringify({ n: this.#records, crc }), []);
    pieces.push(...this.#out.take());
    this.#records = 0;
    return new Promise<void>((done, fail) => {
      this.#queue.push({ pieces, done, fail });
      void this.#kick();
    });
  }

  /**
   * Replaces the log with a snapshot of `core`, whose state already includes
   * the records appended since the last commit (they are dropped, not logged).
   */
  async compact(core: BrokerCore): Promise<void> {
    this.#out.take();
    this.#records = 0;
    this.#writing = true;
    try {
      const gen = this.#gen + 1;
      const pieces = writeSnapshot(core.snapshot(), gen);
      const tmp = join(this.#dir, `${SNAPSHOT}.tmp`);
      const fd = await openAsync(tmp, 'w');
      try {
        await writevAsync(fd, pieces);
        await fsyncAsync(fd);
      } finally { await closeAsync(fd); }
      renameSync(tmp, join(this.#dir, SNAPSHOT));
      syncDir(this.#dir);
      const oldFd = this.#fd;
      const oldGen = this.#gen;
      this.#fd = openSync(join(this.#dir, logName(gen)), 'a');
      this.#gen = gen;
      this.#size = 0;
      closeSync(oldFd);
      unlinkSync(join(this.#dir, logName(oldGen)));
      log('journal: compacted into snapshot generation %d', gen);
    } finally {
      this.#writing = false;
      void this.#kick();
    }
  }

  async close(): Promise<void> {
    await this.commit().catch(() => undefined);
    while (this.#writing || this.#queue.length > 0) await new Promise<void>((r) => setImmediate(r));
    closeSync(this.#fd);
  }

  /** Writes every queued group with one writev and one fdatasync. */
  async #kick(): Promise<void> {
    if (this.#writing || this.#queue.length === 0) return;
    this.#writing = true;
    const groups = this.#queue;
    this.#queue = [];
    const pieces = groups.flatMap((g) => g.pieces);
    try {
      let bytes = 0;
      for (const p of pieces) bytes += p.length;
      let written = 0;
      while (written < bytes) written += (await writevAsync(this.#fd, written === 0 ? pieces : remaining(pieces, written))).bytesWritten;
      if (this.#options.fsync) await syncAsync(this.#fd);
      this.#size += bytes;
      for (const g of groups) g.done();
    } catch (err) {
      this.#failed = new ProtocolError(`The broker journal in ${this.#dir} failed: ${(err as Error).message}; the broker refuses further changes`);
      for (const g of [...groups, ...this.#queue.splice(0)]) g.fail(this.#failed);
    } finally {
      this.#writing = false;
    }
    void this.#kick();
  }
}

function remaining(pieces: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const p of pieces) {
    if (skip >= p.length) { skip -= p.length; continue; }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}

function syncDir(dir: string): void {
  try { const fd = openSync(dir, 'r'); try { fsyncSync(fd); } finally { closeSync(fd); } } catch { /* not supported on every platform */ }
}

const copyKey = (id: string, attempt: number): string => `${attempt}:${id}`;

function apply(core: BrokerCore, record: JournalRecord, acked: Set<string>): void {
  switch (record.t) {
    case 'publish': core.publish(record.batch); break;
    case 'settle': acked.add(copyKey(record.mid, record.attempt)); core.apply(record.outcome); break;
    case 'setState': core.setState(record.record); break;
    case 'revoke': core.revoke(record.id); break;
  }
}

/** Decodes a log; calls `onRecord` for the records of each complete, checksummed group. Returns the byte length of the good prefix. */
export function replayLog(data: Buffer, onRecord: (r: JournalRecord) => void): number {
  let group: JournalRecord[] = [];
  let crc = 0;
  let offset = 0;
  let good = 0;
  const decoder = new FrameDecoder(MAX_RECORD, (buf, from, to) => {
    const payload = buf.subarray(from, to);
    const frameStart = offset;
    offset += 4 + payload.length;
    const raw = splitPayload(payload);
    if (raw.type === Rec.commit) {
      const o = obj(raw.body, 'commit');
      if (int(o, 'n', 'commit') !== group.length || int(o, 'crc', 'commit') !== crc) throw new ProtocolError('journal group checksum mismatch');
      for (const r of group) onRecord(r);
      group = [];
      crc = 0;
      good = offset;
      return;
    }
    crc = crc32(data.subarray(frameStart, offset), crc);
    group.push(decodeRecord(raw.type, raw.body, raw.bins));
  });
  try { decoder.push(data); } catch (err) { log('journal: replay stops at byte %d: %s', good, (err as Error).message); }
  return good;
}

function decodeRecord(type: number, body: unknown, bins: readonly Uint8Array[]): JournalRecord {
  const o = obj(body, 'record');
  switch (type) {
    case MsgType.publish: return { t: 'publish', batch: readBatch(o, bins, 'publish') };
    case MsgType.settle: return { t: 'settle', mid: str(o, 'mid', 'settle'), attempt: int(o, 'attempt', 'settle'), outcome: readOutcome(o['outcome'], bins, 'settle.outcome') };
    case MsgType.setState: return { t: 'setState', record: readRecord(o, bins, 'setState') };
    case MsgType.revoke: return { t: 'revoke', id: str(o, 'sid', 'revoke') };
    default: throw new ProtocolError(`unknown journal record type ${type}`);
  }
}

/**
 * Serialises a snapshot as record frames, the last one a commit with the checksum of the rest.
 * `chunkBytes`: the frame size past which a chunk of several items is split (lower in tests).
 */
export function writeSnapshot(snap: CoreSnapshot, gen: number, chunkBytes = CHUNK_BYTES): Buffer[] {
  const out = new Outbox();
  let n = 0;
  const put = (type: number, body: unknown, binary: boolean): void => {
    const bins: Uint8Array[] = [];
    n++;
    writeFrame(out, type, 0, stringifyWithBins(body, binary, bins), bins);
  };
  // Chunks of up to CHUNK items, halved while a frame would pass chunkBytes: large results or arguments
  // would make one JSON text over V8's string limit (~512 MiB), or a frame over MAX_RECORD, and the
  // snapshot could then never be written (or read back).
  const putAll = (type: number, key: string, items: readonly unknown[]): void => {
    let size = CHUNK;
    for (let i = 0; i < items.length;) {
      const k = Math.min(size, items.length - i);
      const before = out.bytes;
      try { put(type, { [key]: items.slice(i, i + k) }, true); } catch (err) {
        if (k === 1 || !(err instanceof RangeError)) throw err;
        n--;
        size = Math.ceil(k / 2);
        continue;
      }
      if (k > 1 && out.bytes - before > chunkBytes) { out.dropLast(); n--; size = Math.ceil(k / 2); continue; }
      i += k;
    }
  };
  put(Rec.meta, { gen }, false);
  putAll(Rec.states, 'states', snap.states);
  putAll(Rec.tasks, 'tasks', snap.tasks);
  putAll(Rec.chords, 'chords', snap.chords);
  put(Rec.closed, { ids: snap.closedChords }, false);
  put(Rec.revoked, { ids: snap.revoked }, false);
  const pieces = out.take();
  let crc = 0;
  for (const p of pieces) crc = crc32(p, crc);
  writeFrame(out, Rec.commit, 0, JSON.stringify({ n, crc }), []);
  return [...pieces, ...out.take()];
}

/** Parses a snapshot file; throws ProtocolError when it is damaged. */
export function readSnapshot(data: Buffer): { gen: number; snapshot: CoreSnapshot } {
  let gen = -1;
  const states: StateRecord[] = [];
  const tasks: TaskMessage[] = [];
  const chords: Array<CoreSnapshot['chords'][number]> = [];
  let closedChords: string[] = [];
  let revoked: string[] = [];
  let count = 0;
  let crc = 0;
  let offset = 0;
  let complete = false;
  new FrameDecoder(MAX_RECORD, (buf, from, to) => {
    const payload = buf.subarray(from, to);
    const start = offset;
    offset += 4 + payload.length;
    const { type, body, bins } = splitPayload(payload);
    const o = obj(body, 'snapshot record');
    if (type === Rec.commit) {
      if (int(o, 'n', 'commit') !== count || int(o, 'crc', 'commit') !== crc) throw new ProtocolError('snapshot checksum mismatch');
      complete = true;
      return;
    }
    count++;
    crc = crc32(data.subarray(start, offset), crc);
    switch (type) {
      case Rec.meta: gen = int(o, 'gen', 'meta'); break;
      case Rec.states: for (const [i, r] of arr(o['states'], 'states').entries()) states.push(readRecord(r, bins, `states[${i}]`)); break;
      case Rec.tasks: for (const [i, t] of arr(o['tasks'], 'tasks').entries()) tasks.push(readTask(t, bins, `tasks[${i}]`)); break;
      case Rec.chords:
        for (const [i, c] of arr(o['chords'], 'chords').entries()) {
          const e = obj(c, `chords[${i}]`);
          const spec = readBatch({ tasks: [], chords: [e['spec']] }, bins, `chords[${i}]`).chords[0];
          if (spec === undefined) throw new ProtocolError('snapshot chord without spec');
          chords.push({ spec, results: arr(e['results'], 'results').map((r, j) => (r === null ? null : readPacked(r, bins, `chords[${i}].results[${j}]`))) });
        }
        break;
      case Rec.closed: closedChords = strings(o['ids'], 'closed'); break;
      case Rec.revoked: revoked = strings(o['ids'], 'revoked'); break;
      default: throw new ProtocolError(`unknown snapshot record type ${type}`);
    }
  }).push(data);
  if (!complete || gen < 0) throw new ProtocolError('The broker snapshot is incomplete or damaged: restore dataDir from a backup or remove the snapshot to start empty');
  return { gen, snapshot: { states, tasks, chords, closedChords, revoked } };
}
