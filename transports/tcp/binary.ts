/**
 * The compact binary bodies of the hot messages (protocol version 2): publish,
 * settle, setState, deliver, result and event. Each task costs these frames
 * on its way, so they skip JSON: fixed fields are raw numbers, strings are
 * length-prefixed UTF-8 and a packed value's JSON text is copied as bytes,
 * never escaped into an outer JSON string. Rare, nested fields (backoff,
 * headers, workflow links, error details) travel as a JSON text inside the
 * binary body and are narrowed by the readers of wire-values.ts.
 *
 *   str     u32 byteLength, UTF-8 bytes
 *   num     f64 (IEEE 754); an integer field must hold a safe integer
 *   packed  u8 0, str text                      plain JSON text ("" = undefined)
 *         | u8 1, str json, u32 n, u32 × n      JSON text + indexes of the frame's attachments (each used once)
 *   task    str id, str name, str queue, packed args, num priority, num eta, num retries,
 *           num attempt, num createdAt, str extras (JSON object of the optional fields; "" = none)
 *   batch   u32 n, task × n, str chords (JSON array of chord specs; "" = none)
 *   record  str id, str name, u8 state, num attempts, num createdAt, num updatedAt,
 *           u8 flags (1 result, 2 error, 4 expiresAt), [packed result], [str error JSON], [num expiresAt]
 *   chordRef str id, num index, u32 n, str × n
 *   outcome u32 n, record × n, u8 flags (1 publish, 2 retry, 4 chord), [batch], [task],
 *           [chordRef, u8 hasResult, [packed result]]
 *
 * docs/protocol.md section 3 is the reference for other implementations.
 * binary-writer.ts writes these bodies; binary-reader.ts reads them, bounds-checked,
 * with a ProtocolError naming the field for anything off.
 */
import type { TaskState } from '../../src/transport.js';

/** Task states in their wire order (u8). */
export const STATE_CODES: readonly TaskState[] = ['PENDING', 'RECEIVED', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'];
/** Bytes of the fixed payload header (u8 type, u32 id, u32 nbins); protocol.ts re-exports it. */
export const PAYLOAD_HEADER_BYTES = 9;
