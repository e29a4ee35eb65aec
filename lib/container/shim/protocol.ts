/**
 * What a container's shim and its clients say to each other over the shim's unix socket (`shim.sock` in the
 * container's directory). A client sends one JSON request line; the shim answers with frames: an 8-byte header
 * (stream kind, three zero bytes, payload length as a big-endian uint32, as Docker's attach stream multiplexes)
 * and the payload. Kinds 1 and 2 carry the container's stdout and stderr; kind 3 carries a JSON message. An attached
 * client that sends the container's stdin frames it the same way after its request line: kind 0 carries input, a
 * kind 3 `{"type":"stdin-end"}` says its input ended (closing the socket without it is a detach, not an EOF).
 *
 * The socket is bound and reached through `/proc/self/fd/<dir fd>/shim.sock`, so the path length limit of unix
 * sockets (107 bytes) never bites for deep state roots; the container directory (0700) keeps other users out.
 * @module
 */
import { closeSync, openSync } from 'node:fs';
import { BerthError, ContainerStartError } from '../../errors.js';

/** Frame kinds. */
export const FRAME = { stdin: 0, stdout: 1, stderr: 2, message: 3 } as const;

/** A request from a client. */
export type ShimRequest =
  /** Release the init (the program starts): answered by one `started` or `error` message. */
  | { op: 'start' }
  /**
   * Receive the container's output from now on, then its exit (`exit` message); with `start`, start it after
   * attaching (so no output is missed).
   */
  | { op: 'attach'; start?: boolean; stdout?: boolean; stderr?: boolean; stdin?: boolean }
  /** Set the terminal's size: answered by one `done` or `error` message. */
  | { op: 'resize'; rows: number; columns: number };

/** A control message from an attached client. */
export type ClientMessage = { type: 'stdin-end' };

/** An error, as it travels between processes. */
export interface WireError {
  name: string;
  code: string;
  message: string;
  /** ContainerStartError: the exit status Docker's CLI uses (125, 126, 127). */
  exitStatus?: number;
  step?: string;
  errno?: string;
  target?: string;
}

/** A JSON message from the shim. */
export type ShimMessage =
  | { type: 'created'; id: string; name: string }
  | { type: 'started' }
  | { type: 'done' }
  | { type: 'error'; error: WireError }
  | { type: 'exit'; exitCode: number; signal: string | null; oomKilled: boolean };

/** Serializes an error for the wire. */
export function toWire(e: unknown): WireError {
  if (e instanceof ContainerStartError) {
    return {
      name: e.name, code: e.code, message: e.message, exitStatus: e.exitStatus, step: e.step, errno: e.errno,
      ...(e.target !== undefined ? { target: e.target } : {}),
    };
  }
  if (e instanceof BerthError) return { name: e.name, code: e.code, message: e.message };
  return { name: 'Error', code: 'ERR_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/** Turns a wire error back into a BerthError (a ContainerStartError when it was one). */
export function fromWire(w: WireError): BerthError {
  if (w.exitStatus !== undefined && w.step !== undefined) {
    return new ContainerStartError(w.step, w.errno ?? '', w.target, w.message, w.exitStatus);
  }
  const e = new BerthError(w.code, w.message);
  Object.defineProperty(e, 'name', { value: w.name });
  return e;
}

/** One frame. */
export function encodeFrame(kind: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** A message frame. */
export function encodeMessage(m: ShimMessage): Buffer {
  return encodeFrame(FRAME.message, Buffer.from(JSON.stringify(m)));
}

/** A client's control frame. */
export function encodeClientMessage(m: ClientMessage): Buffer {
  return encodeFrame(FRAME.message, Buffer.from(JSON.stringify(m)));
}

/** Splits a byte stream into frames. */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);

  /** Feeds bytes; returns the complete frames they finish. */
  push(chunk: Buffer): { kind: number; payload: Buffer }[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: { kind: number; payload: Buffer }[] = [];
    while (this.#buf.length >= 8) {
      const len = this.#buf.readUInt32BE(4);
      if (this.#buf.length < 8 + len) break;
      out.push({ kind: this.#buf[0]!, payload: Buffer.from(this.#buf.subarray(8, 8 + len)) });
      this.#buf = this.#buf.subarray(8 + len);
    }
    return out;
  }
}

/** The socket's name inside the container's directory. */
export const SOCKET_NAME = 'shim.sock';

/**
 * Calls `f` with a short path naming `<dir>/shim.sock` (through an fd of `dir` held meanwhile): binding or
 * connecting resolves the path at once, so the fd may close right after.
 */
export async function withSocketPath<T>(dir: string, f: (path: string) => Promise<T>): Promise<T> {
  const fd = openSync(dir, 'r');
  try {
    return await f(`/proc/self/fd/${fd}/${SOCKET_NAME}`);
  } finally {
    closeSync(fd);
  }
}
