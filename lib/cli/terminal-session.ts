/**
 * The terminal side of an attached `berth` command (`run -it`, `attach`, `start -ai`, `exec -it`): this
 * terminal in raw mode while attached (keys, ^C included, go to the container's terminal, whose line discipline
 * turns them into signals), its size passed on when it changes, and docker's detach keys (default ctrl-p ctrl-q)
 * that leave the container running.
 * @module
 */
import { Transform, type Readable } from 'node:stream';
import type { ReadStream } from 'node:tty';
import type { TerminalSize } from '../container/terminal.js';
import { native } from '../native.js';
import { UsageError } from './args.js';
import type { Context } from './command.js';

/** docker's default detach sequence. */
export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** Parses docker's `--detach-keys` (`ctrl-p,ctrl-q`, `ctrl-@`, `a`, ...) into bytes; `''` disables detaching. */
export function parseDetachKeys(spec: string, command: string): Buffer {
  if (spec === '') return Buffer.alloc(0);
  const controls = '@abcdefghijklmnopqrstuvwxyz[\\]^_';
  return Buffer.from(spec.split(',').map((key) => {
    const k = key.trim().toLowerCase();
    if (k.length === 1) return k.charCodeAt(0);
    const m = /^ctrl-(.)$/.exec(k);
    if (m && controls.includes(m[1]!)) return controls.indexOf(m[1]!);
    throw new UsageError(command, `invalid detach keys "${spec}": give keys like "ctrl-p,ctrl-q" (ctrl-<a-z, @, [, \\, ], ^ or _> or single characters)`);
  }));
}

/**
 * Passes input through until it sees `keys` in sequence, then calls `onDetach` and swallows the sequence. Bytes
 * held while a sequence might be starting are sent on once it turns out not to be one.
 */
export class DetachKeyFilter extends Transform {
  #matched = 0;
  readonly #keys: Buffer;
  readonly #onDetach: () => void;

  constructor(keys: Buffer, onDetach: () => void) {
    super();
    this.#keys = keys;
    this.#onDetach = onDetach;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    if (this.#keys.length === 0) {
      this.push(chunk);
      return cb();
    }
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.#keys[this.#matched]) {
        this.#matched++;
        if (this.#matched === this.#keys.length) {
          this.#matched = 0;
          if (out.length) this.push(Buffer.from(out));
          this.#onDetach();
          return cb();
        }
        continue;
      }
      // Not the sequence after all: what was held goes on, then this byte (which may start a sequence itself).
      out.push(...this.#keys.subarray(0, this.#matched));
      this.#matched = 0;
      if (byte === this.#keys[0]) this.#matched = 1;
      else out.push(byte);
    }
    if (out.length) this.push(Buffer.from(out));
    cb();
  }
}

/** An attached terminal session; `close()` restores this terminal. */
export interface Session {
  /** What to send to the container's stdin (null without `-i`). */
  input: Readable | null;
  /** Aborted when the user typed the detach keys. */
  detach: AbortSignal;
  /** This terminal's size, when stdout is one and a terminal was asked for. */
  size(): TerminalSize | undefined;
  close(): void;
}

/**
 * Sets this terminal up for an attached container: raw mode when the container has a terminal and stdin is one,
 * resizes forwarded through `onResize`, and detach keys on the input.
 */
export function openSession(
  ctx: Context,
  options: { tty: boolean; stdin: boolean; detachKeys: Buffer; onResize?: (size: TerminalSize) => void },
): Session {
  const ac = new AbortController();
  const stdin = ctx.stdin as NodeJS.ReadableStream & Partial<Pick<ReadStream, 'isTTY' | 'setRawMode'>>;
  const stdout = ctx.stdout as NodeJS.WritableStream & { isTTY?: boolean; rows?: number; columns?: number; on?: (e: string, f: () => void) => void; off?: (e: string, f: () => void) => void };
  const size = (): TerminalSize | undefined =>
    options.tty && stdout.isTTY && stdout.rows && stdout.columns ? { rows: stdout.rows, columns: stdout.columns } : undefined;
  // Raw mode on the terminal itself (stdin's fd 0), as docker's client: keys go to the container unprocessed, and
  // its output (already CR LF from the container's terminal) reaches the screen unchanged.
  const rawFd = options.tty && options.stdin && stdin.isTTY === true ? (stdin as { fd?: number }).fd ?? 0 : undefined;
  const saved = rawFd !== undefined ? native.makeRaw(rawFd) : undefined;
  const restore = () => {
    if (rawFd !== undefined && saved) native.restoreTermios(rawFd, saved);
  };
  // Even when the command exits abruptly: a terminal left raw is unusable for the person at it.
  process.once('exit', restore);
  const onResize = () => {
    const s = size();
    if (s) options.onResize?.(s);
  };
  if (options.tty && stdout.isTTY) stdout.on?.('resize', onResize);
  let input: Readable | null = null;
  if (options.stdin) {
    // Detach keys apply to terminal sessions, as docker's.
    const filter = new DetachKeyFilter(options.tty ? options.detachKeys : Buffer.alloc(0), () => ac.abort());
    (stdin as NodeJS.ReadableStream).pipe(filter);
    input = filter;
  }
  let closed = false;
  return {
    input,
    detach: ac.signal,
    size,
    close() {
      if (closed) return;
      closed = true;
      restore();
      process.off('exit', restore);
      stdout.off?.('resize', onResize);
      if (input) {
        stdin.unpipe(input as never);
        stdin.pause();
      }
    },
  };
}
