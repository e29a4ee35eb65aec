/**
 * Append-only files of newline-terminated records that rotate by size — `path`, then `path.1` (older) up to
 * `path.<keep-1>` (oldest) — as Docker's json-file log driver keeps them; and a reader that replays them and
 * follows new records across rotations. Used for container logs (one writer each) and the events of a state root
 * (many writers, serialized by a lock).
 * @module
 */
import {
  closeSync, fstatSync, openSync, readSync, renameSync, statSync, unlinkSync, watch, writeSync, type FSWatcher,
} from 'node:fs';
import { basename, dirname } from 'node:path';
import { BerthError } from '../errors.js';
import { native } from '../native.js';

/** How large one file may grow and how many files (the current one included) are kept. */
export interface RotationLimits {
  /** Bytes; 0 means no rotation (the file grows without bound). */
  maxSize: number;
  /** Files kept, at least 1 (1: the file is started over when full). */
  maxFiles: number;
}

/** Shifts `path` → `path.1` → … dropping the oldest; with one file kept, the full file is deleted. */
function rotate(path: string, maxFiles: number): void {
  if (maxFiles <= 1) {
    unlinkQuietly(path);
    return;
  }
  for (let i = maxFiles - 1; i >= 1; i--) {
    const from = i === 1 ? path : `${path}.${i - 1}`;
    try {
      renameSync(from, `${path}.${i}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * The single writer of a rotated file (a container's log): keeps the current file open and rotates it before a
 * write would pass `maxSize`. Writes are synchronous and whole (one record is never split over two files).
 * Failures (the container's directory was removed, the disk is full) stop the writer quietly: losing log lines
 * must never take the container's owner down. Records larger than `maxSize` still go in, alone in a file.
 */
export class RotatingWriter {
  readonly path: string;
  #limits: RotationLimits;
  #fd: number | undefined;
  #size = 0;
  #failed = false;

  constructor(path: string, limits: RotationLimits) {
    this.path = path;
    this.#limits = limits;
  }

  /** Whether a write failed (the writer then drops everything). */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Appends whole records (each ending in a newline). Consecutive records that fit are written with one
   * syscall; the file rotates between records, never inside one.
   */
  write(records: readonly Buffer[]): void {
    if (this.#failed || records.length === 0) return;
    try {
      if (this.#fd === undefined) this.#open();
      const { maxSize, maxFiles } = this.#limits;
      let batch: Buffer[] = [];
      let batchSize = 0;
      const flush = () => {
        if (batch.length === 0) return;
        const data = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchSize);
        let off = 0;
        while (off < data.length) off += writeSync(this.#fd!, data, off);
        this.#size += data.length;
        batch = [];
        batchSize = 0;
      };
      for (const r of records) {
        if (maxSize > 0 && this.#size + batchSize > 0 && this.#size + batchSize + r.length > maxSize) {
          flush();
          closeSync(this.#fd!);
          this.#fd = undefined;
          rotate(this.path, maxFiles);
          this.#open();
        }
        batch.push(r);
        batchSize += r.length;
      }
      flush();
    } catch {
      this.#failed = true;
      this.close();
    }
  }

  #open(): void {
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  /** Closes the file; later writes reopen it. */
  close(): void {
    if (this.#fd !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {
        // already closed
      }
      this.#fd = undefined;
    }
  }
}

/**
 * Appends one record to a rotated file that several processes write, holding an exclusive lock on `lockPath`
 * for the size check, the rotation and the write. The lock wait spins briefly (the critical section is a few
 * syscalls) and gives up after two seconds.
 */
export function appendLocked(path: string, lockPath: string, record: Buffer, limits: RotationLimits): void {
  const lock = openSync(lockPath, 'a', 0o600);
  try {
    const deadline = Date.now() + 2000;
    while (!native.flock(lock, true)) {
      if (Date.now() > deadline) throw new BerthError('ERR_LOCK_TIMEOUT', `timed out waiting for ${lockPath}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      // not there yet
    }
    if (limits.maxSize > 0 && size > 0 && size + record.length > limits.maxSize) rotate(path, limits.maxFiles);
    const fd = openSync(path, 'a', 0o600);
    try {
      let off = 0;
      while (off < record.length) off += writeSync(fd, record, off);
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(lock); // releases the lock
  }
}

/** Options of {@link readRecords}. */
export interface ReadRecordsOptions {
  /** Files kept by the writer (so how many older files to look for). */
  maxFiles: number;
  /**
   * Where to begin: every record still kept, only records written from now on, or the last `count` records that
   * `accept` takes (read newest first, so a long history is not parsed for a short tail).
   */
  start: 'beginning' | 'end' | { tail: number; accept: (line: string) => boolean };
  /** Keep waiting for new records after the existing ones. */
  follow?: boolean;
  /**
   * Asked (while following) whenever no new record arrived: true ends the reading after one last look for
   * records written meanwhile. E.g. "the container stopped and its log writer finished".
   */
  shouldStop?: () => boolean;
  /** How often to look when no change notification comes (default 250 ms). */
  pollMs?: number;
  signal?: AbortSignal;
}

/** An open file being read: its inode (to notice rotation) and how far it was read. */
interface Cursor {
  fd: number;
  ino: number;
  offset: number;
  /** Bytes after the last newline read so far (a record still being written). */
  rest: Buffer;
}

function openCursor(path: string): Cursor | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  return { fd, ino: fstatSync(fd).ino, offset: 0, rest: Buffer.alloc(0) };
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Reads what was appended to the cursor's file since the last call; returns the complete lines. */
function drain(c: Cursor): string[] {
  const chunks: Buffer[] = [c.rest];
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    const n = readSync(c.fd, buf, 0, buf.length, c.offset);
    if (n <= 0) break;
    c.offset += n;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  const all = chunks.length === 1 ? c.rest : Buffer.concat(chunks);
  const last = all.lastIndexOf(0x0a);
  if (last < 0) {
    c.rest = all;
    return [];
  }
  c.rest = Buffer.from(all.subarray(last + 1));
  return all.subarray(0, last).toString('utf8').split('\n');
}

/** Whole lines of a file, read at once (older rotated files: they no longer change). */
function linesOf(c: Cursor): string[] {
  const lines = drain(c);
  if (c.rest.length > 0) lines.push(c.rest.toString('utf8'));
  c.rest = Buffer.alloc(0);
  return lines;
}

/**
 * Replays and follows the records of a rotated file set, oldest first, one line (without its newline) per
 * record. Files opened once are read to their end even when the writer rotates them away meanwhile, so no
 * record is lost or repeated at a rotation (unless the writer rotates a file out of the kept set before it is
 * read: then those records are gone, as in Docker).
 */
export async function* readRecords(path: string, options: ReadRecordsOptions): AsyncGenerator<string> {
  const { signal } = options;
  // The current file first: older ones opened afterwards that turn out to be it (a rotation in between) are skipped.
  let current = openCursor(path);
  const older: Cursor[] = [];
  try {
    if (options.start !== 'end') {
      for (let i = options.maxFiles - 1; i >= 1; i--) {
        const c = openCursor(`${path}.${i}`);
        if (!c) continue;
        if (c.ino === current?.ino || older.some((o) => o.ino === c.ino)) closeSync(c.fd);
        else older.push(c);
      }
    }
    if (options.start === 'beginning') {
      for (const c of older) yield* linesOf(c);
      if (current) yield* drain(current);
    } else if (options.start === 'end') {
      if (current) current.offset = fstatSync(current.fd).size;
    } else {
      const { tail, accept } = options.start;
      const picked: string[] = [];
      if (current) {
        const lines = drain(current);
        for (let i = lines.length - 1; i >= 0 && picked.length < tail; i--) if (accept(lines[i]!)) picked.push(lines[i]!);
      }
      for (let k = older.length - 1; k >= 0 && picked.length < tail; k--) {
        const lines = linesOf(older[k]!);
        for (let i = lines.length - 1; i >= 0 && picked.length < tail; i--) if (accept(lines[i]!)) picked.push(lines[i]!);
      }
      yield* picked.reverse();
    }
    for (const c of older.splice(0)) closeSync(c.fd);
    if (!options.follow) return;

    const waiter = new ChangeWaiter(path, options.pollMs ?? 250);
    try {
      let stopping = false;
      for (;;) {
        if (signal?.aborted) return;
        let got = false;
        if (current) {
          const lines = drain(current);
          if (lines.length > 0) {
            got = true;
            yield* lines;
          }
        }
        const ino = inodeOf(path);
        if (ino !== current?.ino && ino !== undefined) {
          // Rotated (or created): what the old file still held was read above; go on with the new one.
          if (current) {
            if (current.rest.length > 0) yield current.rest.toString('utf8');
            closeSync(current.fd);
          }
          current = openCursor(path);
          continue;
        }
        if (got) continue;
        if (stopping) return;
        if (options.shouldStop?.()) {
          stopping = true; // one more look: the writer may have written just before it finished
          continue;
        }
        await waiter.wait(signal);
      }
    } finally {
      waiter.close();
    }
  } finally {
    for (const c of older) closeSync(c.fd);
    if (current) closeSync(current.fd);
  }
}

/** Wakes a follower when its file's directory changes (inotify through fs.watch), or after `pollMs` anyway. */
class ChangeWaiter {
  #watcher: FSWatcher | undefined;
  #wake: (() => void) | undefined;
  #pollMs: number;

  constructor(path: string, pollMs: number) {
    this.#pollMs = pollMs;
    const name = basename(path);
    try {
      this.#watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || String(file).startsWith(name)) this.#wake?.();
      });
      this.#watcher.on('error', () => this.close()); // the directory went away: polling notices the rest
    } catch {
      this.#watcher = undefined; // no directory yet: poll
    }
  }

  wait(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#pollMs);
      signal?.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
