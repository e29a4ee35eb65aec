/**
 * Who reads a container's stdout and stderr so that they are logged, and what the caller still gets.
 *
 * Docker always logs: its daemon reads every container's output and copies it to attached clients. berth has
 * no daemon, so the reader is the container's owner while it lives:
 *
 * - `'pipe'`: the owner reads the pipe, records each chunk in the log, and passes it on to the container's
 *   `stdout`/`stderr` stream (a tee that keeps the stream's back-pressure: a caller who stops reading stops the
 *   container's writes, as before). Destroying the caller's stream detaches it; logging goes on.
 * - `'ignore'`: the output goes to the log only — read by the owner for a container that dies with it, or by a
 *   log monitor process (./monitor) for a detached container, which outlives its owner.
 * - `'inherit'` or an fd: the container writes to it directly and berth does not see (or log) that stream.
 * - `log: { driver: 'none' }`: nothing is logged and every stream is connected as asked, as before logging.
 * @module
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { isatty, ReadStream } from 'node:tty';
import type { StdioOption } from '../options.js';
import type { StdioPlan } from '../stdio.js';
import { LogRecorder, type LogConfig } from './json-file.js';

/** What happens to one output stream (see the module comment). */
export type OutputRole = 'tee' | 'log' | 'monitor' | 'direct';

/** Decides the role of an output stream with option `opt`. */
export function outputRole(opt: StdioOption, detached: boolean, logging: boolean): OutputRole {
  if (!logging || opt === 'inherit' || typeof opt === 'number') return 'direct';
  if (opt === 'pipe') return 'tee';
  return detached ? 'monitor' : 'log';
}

/** The caller's side of captured output. */
export interface CapturedOutput {
  /** For `tee` streams: what the caller reads. */
  stdout: Readable | null;
  stderr: Readable | null;
  /**
   * Resolves once every captured pipe reached its end (all writers in the container are gone) and the log is
   * complete; after `graceMs` without that (a process outside the container's pid namespace may hold the pipe),
   * stops reading and closes the log.
   */
  finish(graceMs?: number): Promise<void>;
  /** Stops at once (a create that failed). */
  destroy(): void;
}

interface Tap {
  name: 'stdout' | 'stderr';
  raw: Socket;
  ended: Promise<void>;
}

/**
 * A reader of a container's output fd: a pipe through net.Socket (libuv, no thread per read, as child_process
 * does), a terminal's master through tty.ReadStream (net.Socket refuses tty fds; the end of the terminal, EIO once
 * every slave fd is closed, reads as the end of the stream).
 */
function outputReader(fd: number): Socket & { isTTY?: boolean } {
  return isatty(fd) ? new ReadStream(fd) : new Socket({ fd, readable: true, writable: false });
}

/**
 * Reads the pipes' read ends `fds` (owned from now on) and records their output with `recorder`. Streams with
 * role `tee` are also handed to the caller; `log` streams do not keep the process alive unless `keepAlive` (a
 * container that dies with its owner needs no one to outlive it to read its output; the log monitor does).
 */
export function captureOutput(
  fds: { stdout?: number | undefined; stderr?: number | undefined },
  roles: { stdout: OutputRole; stderr: OutputRole },
  recorder: LogRecorder,
  options: { keepAlive?: boolean } = {},
): CapturedOutput {
  const taps: Tap[] = [];
  const user: { stdout: Readable | null; stderr: Readable | null } = { stdout: null, stderr: null };
  for (const name of ['stdout', 'stderr'] as const) {
    const fd = fds[name];
    if (fd === undefined) continue;
    const raw = outputReader(fd);
    let view: Readable | null = null;
    let detached = false;
    if (roles[name] === 'tee') {
      view = new Readable({
        read: () => raw.resume(),
        destroy: (err, cb) => {
          // The caller let go of the stream: keep logging, never block the container on it again.
          detached = true;
          raw.resume();
          cb(err);
        },
      });
      user[name] = view;
    } else if (!options.keepAlive) {
      raw.unref();
    }
    raw.on('data', (chunk: Buffer) => {
      recorder.write(name, chunk);
      if (view && !detached && !view.push(chunk)) raw.pause();
    });
    const ended = new Promise<void>((resolve) => {
      let over = false;
      const done = (err?: Error) => {
        if (over) return;
        over = true;
        recorder.end(name);
        if (view && !detached) {
          if (err) view.destroy(err);
          else view.push(null);
        }
        resolve();
      };
      raw.once('end', () => done());
      // A terminal ends with EIO once the program and its children closed it: that is its end of file.
      raw.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EIO' && raw.isTTY ? undefined : err));
      raw.once('close', () => done());
    });
    taps.push({ name, raw, ended });
  }
  const closeAll = () => {
    for (const t of taps) t.raw.destroy();
    recorder.close();
  };
  return {
    ...user,
    async finish(graceMs = 200) {
      let timer: NodeJS.Timeout | undefined;
      const all = Promise.all(taps.map((t) => t.ended));
      await (Number.isFinite(graceMs)
        ? Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))])
        : all);
      clearTimeout(timer);
      closeAll();
    },
    destroy() {
      for (const v of [user.stdout, user.stderr]) v?.destroy();
      closeAll();
    },
  };
}

/** The stream plans for a container's stdout and stderr, and the role of each. */
export function planOutputs(
  outputs: { stdout: StdioOption; stderr: StdioOption },
  detached: boolean,
  log: LogConfig,
): { plans: [StdioPlan, StdioPlan]; roles: { stdout: OutputRole; stderr: OutputRole } } {
  const logging = log.driver === 'json-file';
  const roles = { stdout: outputRole(outputs.stdout, detached, logging), stderr: outputRole(outputs.stderr, detached, logging) };
  return {
    plans: [roles.stdout === 'direct' ? outputs.stdout : 'capture', roles.stderr === 'direct' ? outputs.stderr : 'capture'],
    roles,
  };
}

/** A container's captured output as set up before it is spawned. */
export interface StartedOutputs {
  /** What the owner reads (absent when it reads nothing). */
  output: CapturedOutput | undefined;
  /** Read ends for the log monitor of a detached container (handed over after the spawn, then closed here). */
  monitorFds: { stdout?: number; stderr?: number };
  /** Which streams the monitor records. */
  monitorStreams: ('stdout' | 'stderr')[];
  /** Closes this process's copies of the monitor's fds (once the monitor has them, or it failed to start). */
  releaseMonitorFds(): void;
  /** Undoes everything (a create that failed). */
  destroy(): void;
}

/**
 * Takes the captured read ends (`captured`, from prepareStdio) according to `roles`: the owner's streams start
 * being read and logged now, the monitor's are kept for the log monitor (./monitor.ts). On failure, every captured fd
 * is closed before the error is thrown.
 */
export function startOutputs(
  containerDir: string,
  id: string,
  log: LogConfig,
  roles: { stdout: OutputRole; stderr: OutputRole },
  captured: { stdout?: number; stderr?: number },
): StartedOutputs {
  const names = ['stdout', 'stderr'] as const;
  const ownerStreams = names.filter((n) => roles[n] === 'tee' || roles[n] === 'log');
  const monitorStreams = names.filter((n) => roles[n] === 'monitor');
  const monitorFds: { stdout?: number; stderr?: number } = {};
  for (const n of monitorStreams) if (captured[n] !== undefined) monitorFds[n] = captured[n];
  const closeMonitorFds = () => {
    for (const n of monitorStreams) {
      const fd = monitorFds[n];
      delete monitorFds[n];
      if (fd !== undefined) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
      }
    }
  };
  let output: CapturedOutput | undefined;
  try {
    if (ownerStreams.length > 0) {
      const fds = { stdout: roles.stdout === 'tee' || roles.stdout === 'log' ? captured.stdout : undefined,
        stderr: roles.stderr === 'tee' || roles.stderr === 'log' ? captured.stderr : undefined };
      let recorder: LogRecorder;
      try {
        recorder = new LogRecorder(containerDir, id, log, ownerStreams);
      } catch (e) {
        for (const fd of [fds.stdout, fds.stderr]) if (fd !== undefined) closeSync(fd);
        throw e;
      }
      output = captureOutput(fds, roles, recorder);
    }
  } catch (e) {
    closeMonitorFds();
    throw e;
  }
  return {
    output,
    monitorFds,
    monitorStreams,
    releaseMonitorFds: closeMonitorFds,
    destroy() {
      output?.destroy();
      closeMonitorFds();
    },
  };
}
