/**
 * Shims: the owner process of a container made by the `berth` command. The CLI exits after each command, but a
 * container needs an owner for as long as it exists — to hold the pipe that starts it (`berth create`, later
 * `berth start`), to read its output into the log, to pass that output to `berth run` / `berth start -a`, and to
 * reap it and record its exit code (only the parent learns it). Docker's daemon and containerd-shim do this for
 * docker; berth starts one small Node process per CLI container, in its own session so that a terminal's ^C
 * reaches the CLI (which forwards it to the container) and not the shim.
 *
 * The shim owns a detached container: if the shim itself dies, the container keeps running (its record stays
 * for `berth ps`, `berth stop` and `berth rm`), but its output is lost from then on. Cost: one Node process per
 * container that exists (about 40 MB of memory), and ~80 ms to create one.
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BerthError, ContainerStateError } from '../../errors.js';
import { compiledScript } from '../entry-script.js';
import type { ContainerOptions } from '../options.js';
import {
  encodeClientMessage, encodeFrame, FRAME, FrameDecoder, fromWire, SOCKET_NAME, withSocketPath, type ShimMessage, type ShimRequest,
} from './protocol.js';

/** What the shim is asked to do (JSON on its stdin). */
export interface ShimLaunch {
  /** State root. */
  root: string;
  /** The container's options (stdio and `detached` are the shim's business and are overridden). */
  options?: ContainerOptions;
  /**
   * Instead of creating a container: the id of an exited one the berth command made whose shim is gone; this shim
   * takes it over, and starts its process again (with `start`, or when a client asks).
   */
  takeover?: string;
  /** Start it right away (`run -d`; with `takeover`, `berth start`). */
  start: boolean;
  /** Remove it once it exited and its clients got the exit (`--rm`). */
  autoRemove: boolean;
  /**
   * With `options.stdin: 'pipe'` (`-i`): the first attached client's end of input closes the container's stdin
   * (docker's StdinOnce, set by `docker run -i` in the foreground). Otherwise stdin stays open for later clients.
   */
  stdinOnce?: boolean;
}

/** What launching a shim produced. */
export interface ShimLaunched {
  id: string;
  name: string;
  /** With `start`: why the program could not start (126/127 exit statuses); the container exists, exited. */
  startError?: BerthError;
}

/**
 * Starts a shim that creates (and with `start`, starts) a container. Resolves once the container exists; throws
 * the error that kept it from being created (InvalidOptionsError, ContainerStartError, ...).
 */
export async function launchShim(launch: ShimLaunch): Promise<ShimLaunched> {
  const child = spawn(process.execPath, [compiledScript('container/shim/main.js')], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    cwd: '/', // never pin the caller's directory for the container's lifetime
    env: process.env,
  });
  child.stdin.end(JSON.stringify(launch));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  await Promise.race([new Promise((r) => child.stdout.once('close', r)), spawnError]);
  // The shim lives on; this process must be free to exit without it.
  child.stderr.destroy();
  child.unref();
  const messages = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ShimMessage);
  const created = messages.find((m) => m.type === 'created');
  const error = messages.find((m) => m.type === 'error');
  if (!created) {
    if (error?.type === 'error') throw fromWire(error.error);
    const why = err.trim() || (await Promise.race([spawnError, Promise.resolve(undefined)]))?.message || 'no report';
    throw new BerthError('ERR_SHIM', `the container's shim process failed before creating it: ${why}`);
  }
  return {
    id: created.id,
    name: created.name,
    ...(error?.type === 'error' ? { startError: fromWire(error.error) } : {}),
  };
}

/** Whether a container (by its directory) has a live shim to talk to. */
export function hasShim(containerDir: string): boolean {
  return existsSync(join(containerDir, SOCKET_NAME));
}

/** The mark a shim leaves in the directory of the container it made. */
const SHIM_MARK = 'shim-owned';

/** Records that the container belongs with a shim: starting it again is a shim's job, not its caller's. */
export function markMadeByShim(containerDir: string): void {
  writeFileSync(join(containerDir, SHIM_MARK), '', { mode: 0o600 });
}

/** Whether the berth command made the container (it is owned by a shim, now or once started again). */
export function madeByShim(containerDir: string): boolean {
  return existsSync(join(containerDir, SHIM_MARK));
}

/** The container's shim is gone (its socket is stale): a new one must take the container over. */
export class ShimGoneError extends ContainerStateError {
  constructor() {
    super('the container\'s shim process is gone: it cannot be started or attached to any more');
  }
}

async function open(containerDir: string, req: ShimRequest): Promise<Socket> {
  return withSocketPath(containerDir, (path) => new Promise<Socket>((resolve, reject) => {
    const sock = connect(path, () => {
      sock.off('error', reject);
      sock.write(`${JSON.stringify(req)}\n`);
      resolve(sock);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? new ShimGoneError() : e);
    });
  }));
}

/**
 * Sends a one-shot request and waits for the shim's single reply; throws what failed there, or that the shim
 * closed without the `expected` reply (`what` names the request for that message).
 */
async function ask(containerDir: string, req: ShimRequest, expected: ShimMessage['type'], what: string): Promise<void> {
  const sock = await open(containerDir, req);
  const decoder = new FrameDecoder();
  let reply: ShimMessage | undefined;
  try {
    for await (const chunk of sock) {
      for (const f of decoder.push(chunk as Buffer)) if (f.kind === FRAME.message) reply = JSON.parse(f.payload.toString('utf8')) as ShimMessage;
    }
  } catch (e) {
    // Reset with no reply: the request sat in the socket's backlog when the shim closed it on its way out (a
    // request it accepted is always answered), so it was never seen: the shim is gone.
    const code = (e as NodeJS.ErrnoException).code;
    if (reply === undefined && (code === 'ECONNRESET' || code === 'EPIPE')) throw new ShimGoneError();
    throw e;
  }
  if (reply?.type === 'error') throw fromWire(reply.error);
  if (reply?.type !== expected) throw new ContainerStateError(`the container's shim closed the connection without ${what}`);
}

/** Asks the shim to start its container; throws what the start threw there. */
export function shimStart(containerDir: string): Promise<void> {
  return ask(containerDir, { op: 'start' }, 'started', 'starting it');
}

/** Asks the shim to resize its container's terminal; throws what the resize threw there. */
export function shimResize(containerDir: string, size: { rows: number; columns: number }): Promise<void> {
  return ask(containerDir, { op: 'resize', rows: size.rows, columns: size.columns }, 'done', 'resizing its terminal');
}

/** How an attachment ended. */
export interface AttachOutcome {
  /** The container's exit, when the shim reported it (absent if the connection broke). */
  exit?: { exitCode: number; signal: string | null; oomKilled: boolean };
  /** With `start`: why it could not start. */
  startError?: BerthError;
  /** The client let go (its `detach` signal) while the container runs on. */
  detached?: boolean;
}

/**
 * Attaches to a container through its shim: its output from now on is written to `stdout`/`stderr` (at their
 * pace: the container waits for a slow reader), until it exits. With `start`, the shim starts it right after
 * attaching. `onStarted` runs once it started.
 */
export async function shimAttach(
  containerDir: string,
  options: {
    start?: boolean;
    stdout?: Writable | null;
    stderr?: Writable | null;
    /** Input for the container's stdin (it must have been created with stdin open). */
    stdin?: Readable | null;
    onStarted?: () => void;
    /** Detaches: the connection closes, the container runs on (its stdin stays open). */
    detach?: AbortSignal;
  },
): Promise<AttachOutcome> {
  const sock = await open(containerDir, {
    op: 'attach', start: options.start ?? false, stdout: options.stdout != null, stderr: options.stderr != null,
    stdin: options.stdin != null,
  });
  const decoder = new FrameDecoder();
  const outcome: AttachOutcome = {};
  const input = options.stdin;
  const onInput = (chunk: Buffer) => {
    if (!sock.write(encodeFrame(FRAME.stdin, chunk))) {
      input!.pause();
      sock.once('drain', () => input!.resume());
    }
  };
  const onInputEnd = () => {
    if (!sock.destroyed) sock.write(encodeClientMessage({ type: 'stdin-end' }));
  };
  if (input) {
    input.on('data', onInput);
    input.once('end', onInputEnd);
    input.resume();
  }
  const onDetach = () => {
    outcome.detached = true;
    sock.destroy();
  };
  if (options.detach?.aborted) onDetach();
  else options.detach?.addEventListener('abort', onDetach, { once: true });
  let received = false;
  let reset = false;
  return new Promise<AttachOutcome>((resolve, reject) => {
    sock.on('data', (chunk: Buffer) => {
      received = true;
      for (const f of decoder.push(chunk)) {
        if (f.kind === FRAME.message) {
          const m = JSON.parse(f.payload.toString('utf8')) as ShimMessage;
          if (m.type === 'exit') outcome.exit = { exitCode: m.exitCode, signal: m.signal, oomKilled: m.oomKilled };
          else if (m.type === 'error') outcome.startError = fromWire(m.error);
          else if (m.type === 'started') options.onStarted?.();
          continue;
        }
        const target = f.kind === FRAME.stdout ? options.stdout : options.stderr;
        if (target && !target.write(f.payload)) {
          sock.pause();
          target.once('drain', () => sock.resume());
        }
      }
    });
    sock.once('close', () => {
      if (input) {
        input.off('data', onInput);
        input.off('end', onInputEnd);
        input.pause();
      }
      options.detach?.removeEventListener('abort', onDetach);
      // Reset before a single frame: the request sat in the backlog when the shim closed on its way out (see ask).
      if (reset && !received && !outcome.detached) reject(new ShimGoneError());
      else resolve(outcome);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      reset = e.code === 'ECONNRESET' || e.code === 'EPIPE';
    }); // 'close' follows
  });
}
