/**
 * One broker per dataDir. Two brokers on one journal would each replay it,
 * cut the other's group in flight as a "torn tail", append interleaved
 * groups, and on compaction replace it with a snapshot of only their own
 * state, deleting the other's confirmed records. `dataDir/broker.lock` holds
 * the pid of the broker that owns the directory; a lock left by a process
 * that is gone (SIGKILL, a crash) is taken over. Node has no flock(): a pid
 * file is what is portable.
 */
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ProtocolError } from '../../src/errors.js';

const LOCK = 'broker.lock';
/** Directories locked by brokers of this process, by real path (a pid file cannot tell them from a previous process's same pid). */
const held = new Set<string>();

/** Takes the lock of `dir` (creating the directory); returns its release. Throws ProtocolError when a live broker holds it. */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  // Its real path: the same directory through a symlink (or a relative path) is the same lock.
  const key = realpathSync(dir);
  const path = join(dir, LOCK);
  const owner = held.has(key) ? process.pid : ownerOf(path);
  if (owner !== undefined) {
    throw new ProtocolError(`dataDir ${dir} is in use by another broker (pid ${owner}${owner === process.pid ? ', this process' : ''}): two brokers on one journal lose each other's records; stop it first, or remove ${path} if no broker runs`);
  }
  try { unlinkSync(path); } catch { /* none, or a stale one */ }
  let fd: number;
  try { fd = openSync(path, 'wx'); } catch (err) {
    throw new ProtocolError(`dataDir ${dir}: could not take ${path} (${(err as Error).message}): is another broker starting on it?`);
  }
  try { writeSync(fd, `${process.pid}\n`); } finally { closeSync(fd); }
  held.add(key);
  return () => {
    held.delete(key);
    try { if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path); } catch { /* already gone */ }
  };
}

/** The pid of a live process holding the lock file, or undefined (no file, unreadable, or its process is gone). */
function ownerOf(path: string): number | undefined {
  let pid: number;
  try { pid = Number.parseInt(readFileSync(path, 'utf8'), 10); } catch { return undefined; }
  // Our own pid without our own lock: a previous process that had the same pid (a container restarted).
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try { process.kill(pid, 0); return pid; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined; }
}
