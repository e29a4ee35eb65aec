/**
 * A container's terminal (Docker's `-t`), seen from its owner. The container's init opens a pty in the
 * container's own devpts and sends the master back over a unix socket (SCM_RIGHTS), as runc's console socket
 * does: the slave then belongs to the container's devpts instance, so `tty`, /dev/console and job control work
 * inside, and nothing of the host's devpts is exposed. The owner reads the master (the program's output, stdout
 * and stderr as one stream), writes to it (typing), and sets its window size.
 * @module
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { ReadStream, WriteStream } from 'node:tty';
import { InvalidOptionsError } from '../errors.js';
import { native } from '../native.js';
import { outputRole, type OutputRole } from './logs/capture.js';
import type { LogConfig } from './logs/json-file.js';
import type { ContainerOptions, StdioOption } from './options.js';
import { safeClose } from './stdio.js';

/** The socket pair a terminal's master travels over: `child` goes into the plan, `parent` stays here. */
export class ConsoleSocket {
  readonly parent: number;
  readonly child: number;

  constructor() {
    [this.parent, this.child] = native.socketpair();
  }

  /** Closes this process's copy of the init's end (after spawn: the init holds its own). */
  closeChild(): void {
    safeClose(this.child);
  }

  /**
   * The master the init sent. Call once the init reported (ready or exec'd): it sends the master before that, so
   * the message is already there. Closes the socket.
   */
  receive(): number {
    try {
      const fd = native.recvFd(this.parent);
      if (fd === null) throw new Error('the container init sent no terminal');
      return fd;
    } finally {
      this.close();
    }
  }

  close(): void {
    safeClose(this.parent);
    safeClose(this.child);
  }
}

/** A terminal's size in character cells. */
export interface TerminalSize {
  rows: number;
  columns: number;
}

/**
 * What the owner keeps of a terminal besides the reader of its output: a handle to resize it, and the
 * keyboard (a writable stream) when the container's stdin is a pipe. Ending the keyboard stream stops typing but
 * keeps the terminal (a pty has no half-close: the program sees no EOF unless it is typed, ^D).
 */
export class TerminalControl {
  #fd: number | undefined;
  readonly input: Writable | null;

  constructor(master: number, withInput: boolean) {
    this.#fd = native.dup(master);
    this.input = withInput ? new WriteStream(native.dup(master)) : null;
  }

  /** Sets the window size; the program's foreground process group gets SIGWINCH. A no-op once closed. */
  resize(size: TerminalSize): void {
    if (this.#fd === undefined) return;
    native.setWinsize(this.#fd, size.rows, size.columns);
  }

  /** Lets go of the terminal (the container exited). */
  close(): void {
    safeClose(this.#fd);
    this.#fd = undefined;
    this.input?.destroy();
  }
}

/**
 * With a terminal, the program's stdin, stdout and stderr are all the terminal: the only choices left are whether
 * the caller types into it (`stdin: 'pipe'`) and reads it (`stdout: 'pipe'`), or not (`'ignore'`).
 */
export function checkTerminalStdio(o: Pick<ContainerOptions, 'stdin' | 'stdout' | 'stderr'>): void {
  const issues = (['stdin', 'stdout', 'stderr'] as const)
    .filter((k) => o[k] !== undefined && o[k] !== 'pipe' && o[k] !== 'ignore')
    .map((k) => ({ path: k, message: `with tty, ${k} must be 'pipe' or 'ignore': the terminal is the program's stdin, stdout and stderr` }));
  if (issues.length) throw new InvalidOptionsError('container options', issues);
}

/** The output plan of a terminal: one stream, recorded in the log as stdout (as Docker does). */
export function terminalOutputPlan(
  stdout: StdioOption,
  detached: boolean,
  log: LogConfig,
): { roles: { stdout: OutputRole; stderr: OutputRole } } {
  return { roles: { stdout: outputRole(stdout, detached, log.driver === 'json-file'), stderr: 'direct' } };
}

/**
 * A terminal's output read directly (an exec, or a container with `log: { driver: 'none' }`): the caller's stream
 * for `'pipe'`; for `'ignore'` it is still read (and dropped), unreferenced, or the program would block on a full
 * terminal.
 */
export function terminalReader(master: number, stdout: StdioOption): Readable | null {
  const raw = new ReadStream(master);
  if (stdout !== 'pipe') {
    raw.unref();
    raw.resume();
    raw.on('error', () => undefined);
    return null;
  }
  // EIO (every slave fd closed) is the terminal's end of file, not an error.
  const out = new PassThrough();
  raw.pipe(out);
  raw.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EIO' ? out.end() : out.destroy(e)));
  out.on('close', () => raw.destroy());
  return out;
}
