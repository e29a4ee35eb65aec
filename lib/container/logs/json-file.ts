/**
 * Docker's json-file log format: `<container dir>/<id>-json.log`, one JSON object per line —
 * `{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}` — rotated by size into
 * `<id>-json.log.1`, `.2`, ... (Docker's `max-size` and `max-file` log options). The recorder turns a container's
 * output into such lines; the reader replays and follows them.
 * @module
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../native.js';
import { readRecords, RotatingWriter, type RotationLimits } from '../../journal/rotated.js';
import { formatNs, nowNs, parseRfc3339Ns, parseTimeInput, type TimeInput } from '../../journal/time.js';

/** How a container's output is logged (Docker's `--log-driver` and `--log-opt max-size / max-file`). */
export interface LogConfig {
  /** `json-file` (the default) records stdout and stderr; `none` records nothing. */
  driver: 'json-file' | 'none';
  /** Bytes per file before it rotates; 0 = unlimited. */
  maxSize: number;
  /** Files kept, the current one included. */
  maxFile: number;
}

/**
 * berth's defaults: Docker's json-file driver, bounded as Docker's newer `local` driver is by default (20 MiB ×
 * 5 files), because an embedded engine must not fill a disk silently. `log: { maxSize: 0 }` gives Docker's
 * unbounded json-file.
 */
export const DEFAULT_LOG_CONFIG: LogConfig = { driver: 'json-file', maxSize: 20 * 1024 * 1024, maxFile: 5 };

/** One logged line (or piece of a line), as stored. */
export interface LogEntry {
  /** The text, with its trailing newline when the line was complete (Docker's `log` field). */
  log: string;
  stream: 'stdout' | 'stderr';
  /** When berth read it: RFC 3339 in UTC with nanoseconds. */
  time: string;
}

/** Docker splits lines longer than this into partial entries (its copier's buffer size). */
const MAX_LINE = 16 * 1024;

/** The current log file of a container. */
export function logPath(containerDir: string, id: string): string {
  return join(containerDir, `${id}-json.log`);
}

/** The lock the log's writer holds while it may still write (readers following the log stop once it is free). */
export function logLockPath(containerDir: string): string {
  return join(containerDir, 'log.lock');
}

/**
 * Turns a container's output into json-file lines. Complete lines become one entry each; a line longer than
 * 16 KiB is written in 16 KiB pieces without a newline, and so is an unfinished last line at the end of the
 * stream (Docker does the same). Holds the log lock from construction until both streams ended.
 */
export class LogRecorder {
  readonly #writer: RotatingWriter;
  readonly #pending: Record<'stdout' | 'stderr', Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  readonly #open = new Set<'stdout' | 'stderr'>();
  #lockFd: number | undefined;
  #finished = false;

  /** Starts recording `streams` of the container at `containerDir`. */
  constructor(containerDir: string, id: string, config: LogConfig, streams: ('stdout' | 'stderr')[]) {
    this.#writer = new RotatingWriter(logPath(containerDir, id), { maxSize: config.maxSize, maxFiles: config.maxFile });
    for (const s of streams) this.#open.add(s);
    const fd = openSync(logLockPath(containerDir), 'a', 0o600);
    // Nobody else writes this container's log, so the lock is free; it only tells readers that a writer lives.
    native.flock(fd, true);
    this.#lockFd = fd;
    if (this.#open.size === 0) this.#finish();
  }

  /** Records output read from `stream`. */
  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.#finished) return;
    const time = formatNs(nowNs());
    let data = this.#pending[stream].length ? Buffer.concat([this.#pending[stream], chunk]) : chunk;
    const out: Buffer[] = [];
    for (;;) {
      const nl = data.indexOf(0x0a);
      if (nl >= 0 && nl < MAX_LINE) {
        out.push(Buffer.from(entryLine(data.subarray(0, nl + 1), stream, time)));
        data = data.subarray(nl + 1);
      } else if (data.length >= MAX_LINE) {
        out.push(Buffer.from(entryLine(data.subarray(0, MAX_LINE), stream, time)));
        data = data.subarray(MAX_LINE);
      } else break;
    }
    this.#pending[stream] = Buffer.from(data);
    this.#writer.write(out);
  }

  /** The stream reached its end: an unfinished last line is written as it is. */
  end(stream: 'stdout' | 'stderr'): void {
    if (!this.#open.delete(stream)) return;
    const rest = this.#pending[stream];
    if (rest.length) this.#writer.write([Buffer.from(entryLine(rest, stream, formatNs(nowNs())))]);
    this.#pending[stream] = Buffer.alloc(0);
    if (this.#open.size === 0) this.#finish();
  }

  /** Stops recording: pending partial lines are written, the file closed, the lock released. Idempotent. */
  close(): void {
    for (const s of [...this.#open]) this.end(s);
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#writer.close();
    if (this.#lockFd !== undefined) closeSync(this.#lockFd);
    this.#lockFd = undefined;
  }
}

function entryLine(bytes: Buffer, stream: 'stdout' | 'stderr', time: string): string {
  return `${JSON.stringify({ log: bytes.toString('utf8'), stream, time })}\n`;
}

/** Whether a log's writer is gone: nobody holds the log lock (or there is no log). */
export function logWriterDone(containerDir: string): boolean {
  let fd: number;
  try {
    fd = openSync(logLockPath(containerDir), 'r');
  } catch {
    return true;
  }
  try {
    return native.flock(fd, false);
  } finally {
    closeSync(fd);
  }
}

/** Options of `container.logs()` (`docker logs`). */
export interface LogsOptions {
  /** Keep reading new output until the container stops (`-f`). */
  follow?: boolean;
  /** Only entries at or after this time (`--since`: a Date, Unix seconds, RFC 3339, or a duration like `10m`). */
  since?: TimeInput;
  /** Only entries before this time (`--until`). */
  until?: TimeInput;
  /** Only the last `tail` entries (`--tail`; default all). */
  tail?: number | 'all';
  /** Prefix each entry's `log` with its time and a space, as `docker logs -t` prints it. */
  timestamps?: boolean;
  /** Include stdout (default true). */
  stdout?: boolean;
  /** Include stderr (default true). */
  stderr?: boolean;
  signal?: AbortSignal;
}

function parseEntry(line: string): LogEntry | undefined {
  try {
    const e = JSON.parse(line) as Partial<LogEntry>;
    if (typeof e.log !== 'string' || (e.stream !== 'stdout' && e.stream !== 'stderr') || typeof e.time !== 'string') return undefined;
    return { log: e.log, stream: e.stream, time: e.time };
  } catch {
    return undefined; // torn or foreign line
  }
}

/**
 * Reads a container's json-file log: what is kept, then (with `follow`) new entries until `finished()` says the
 * container stopped and its writer is done.
 */
export async function* readLogs(
  containerDir: string,
  id: string,
  config: Pick<LogConfig, 'maxFile'>,
  options: LogsOptions,
  finished: () => boolean,
): AsyncGenerator<LogEntry> {
  const since = options.since !== undefined ? parseTimeInput(options.since, 'since') : undefined;
  const until = options.until !== undefined ? parseTimeInput(options.until, 'until') : undefined;
  const wantOut = options.stdout ?? true;
  const wantErr = options.stderr ?? true;
  const accept = (e: LogEntry | undefined): boolean => {
    if (!e || (e.stream === 'stdout' ? !wantOut : !wantErr)) return false;
    const t = parseRfc3339Ns(e.time) ?? 0n;
    return (since === undefined || t >= since) && (until === undefined || t < until);
  };
  const tail = options.tail === undefined || options.tail === 'all' || options.tail < 0 ? undefined : options.tail;
  for await (const line of readRecords(logPath(containerDir, id), {
    maxFiles: config.maxFile,
    start: tail === undefined ? 'beginning' : { tail, accept: (l) => accept(parseEntry(l)) },
    follow: options.follow ?? false,
    shouldStop: () => finished() || (until !== undefined && nowNs() >= until),
    ...(options.signal ? { signal: options.signal } : {}),
  })) {
    const e = parseEntry(line);
    if (!e) continue;
    if (!accept(e)) {
      // Following past `until` ends the reading, as docker logs --until does.
      if (until !== undefined && (parseRfc3339Ns(e.time) ?? 0n) >= until) return;
      continue;
    }
    yield options.timestamps ? { ...e, log: `${e.time} ${e.log}` } : e;
  }
}
