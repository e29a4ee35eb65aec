/**
 * The container's stdin/stdout/stderr: pipes wrapped as Node streams, this process's own stdio, /dev/null, or a
 * caller's fd. Pipes are made by the addon with O_CLOEXEC so that no other child of this process inherits them.
 * @module
 */
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { native } from '../native.js';

import type { StdioOption } from './options.js';

export type { StdioOption };

/** The result of preparing stdio: fds for the container, streams for the caller, fds to close after spawn. */
export interface PreparedStdio {
  childFds: [number, number, number];
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** Closed right after spawn: the container holds its own copies. */
  closeAfterSpawn: number[];
  /** Closed if spawning fails: our ends of the pipes. */
  closeOnFailure: number[];
  /** For `'capture'` outputs: the read ends of their pipes, left to the caller (logs/capture.ts). */
  captured: { stdout?: number; stderr?: number };
}

/** A stream option, or `'capture'`: a pipe whose read end the caller takes raw (to log the output). */
export type StdioPlan = StdioOption | 'capture';

function pipeStream(fd: number, readable: boolean): Socket {
  // net.Socket drives a pipe fd through libuv without a thread per read, like child_process does.
  return new Socket({ fd, readable, writable: !readable, allowHalfOpen: true });
}

/** Opens what each stream option needs. */
export function prepareStdio(options: [StdioPlan, StdioPlan, StdioPlan]): PreparedStdio {
  const out: PreparedStdio = {
    childFds: [-1, -1, -1],
    stdin: null,
    stdout: null,
    stderr: null,
    closeAfterSpawn: [],
    closeOnFailure: [],
    captured: {},
  };
  let devNull: number | undefined;
  try {
    options.forEach((opt, i) => {
      if (opt === 'inherit') {
        out.childFds[i] = i;
      } else if (opt === 'ignore') {
        devNull ??= openSync('/dev/null', 'r+');
        out.childFds[i] = devNull;
      } else if (typeof opt === 'number') {
        out.childFds[i] = opt;
      } else if (opt === 'capture' && i > 0) {
        const [r, w] = native.pipe();
        out.childFds[i] = w;
        out.closeAfterSpawn.push(w);
        out.closeOnFailure.push(r);
        out.captured[i === 1 ? 'stdout' : 'stderr'] = r;
      } else {
        const [r, w] = native.pipe();
        if (i === 0) {
          out.childFds[i] = r;
          out.closeAfterSpawn.push(r);
          out.closeOnFailure.push(w);
          out.stdin = pipeStream(w, false);
        } else {
          out.childFds[i] = w;
          out.closeAfterSpawn.push(w);
          out.closeOnFailure.push(r);
          const s = pipeStream(r, true);
          if (i === 1) out.stdout = s;
          else out.stderr = s;
        }
      }
    });
  } catch (e) {
    for (const fd of [...out.closeAfterSpawn, ...out.closeOnFailure]) safeClose(fd);
    if (devNull !== undefined) safeClose(devNull);
    throw e;
  }
  if (devNull !== undefined) out.closeAfterSpawn.push(devNull);
  return out;
}

/** Closes an fd, ignoring "already closed". */
export function safeClose(fd: number | undefined): void {
  if (fd === undefined || fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Reads a stream to the end as a string (for `Container.run`). */
export async function collect(stream: Readable | null): Promise<string> {
  if (!stream) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
