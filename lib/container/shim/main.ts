/**
 * Entry point of a container shim (see ./shim.ts): creates the container described on stdin, reports on stdout,
 * then owns it — holds its start pipe, logs its output, passes it to attached clients, reaps it and records
 * its exit — and exits after the container did (removing it first when asked, as `docker run --rm`).
 * @module
 */
import { appendFileSync, chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Container, type ExitInfo } from '../container.js';
import type { ContainerOptions } from '../options.js';
import {
  encodeFrame, encodeMessage, FRAME, FrameDecoder, toWire, withSocketPath, type ClientMessage, type ShimMessage, type ShimRequest,
} from './protocol.js';
import type { ShimLaunch } from './shim.js';

/** Reads the launch request: all of stdin, JSON. */
async function readRequest(): Promise<ShimLaunch> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as ShimLaunch;
}

/** The report to whoever launched the shim, sent at once; afterwards stdout is closed (the launcher is gone soon). */
function report(...messages: ShimMessage[]): void {
  process.stdout.end(messages.map((m) => `${JSON.stringify(m)}\n`).join(''));
}

interface Client {
  sock: Socket;
  stdout: boolean;
  stderr: boolean;
}

const launch = await readRequest();
process.title = 'berth-shim';
let container: Container;
try {
  // stdin stays open for attached clients when asked (`-i`); the shim holds it for the container's lifetime.
  const stdin = launch.options.stdin === 'pipe' ? 'pipe' : 'ignore';
  const options: ContainerOptions = { ...launch.options, detached: true, stdin, stdout: 'pipe', stderr: 'pipe' };
  container = await Container.create({ ...options, root: launch.root });
} catch (e) {
  report({ type: 'error', error: toWire(e) });
  process.exit(0);
}
const c = container;
process.title = `berth-shim ${c.id.slice(0, 12)}`;
const dir = join(launch.root, 'containers', c.id);
// From here on nobody reads our stdout or stderr: problems go to a file next to the container's log.
const fail = (e: unknown) => {
  try {
    appendFileSync(join(dir, 'shim.log'), `${new Date().toISOString()} ${e instanceof Error ? e.stack : String(e)}\n`);
  } catch {
    // the container is gone
  }
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

const clients = new Set<Client>();
let exited: ExitInfo | undefined;
let startPromise: Promise<void> | undefined;

/** Starts the container once; later callers share the outcome. */
function start(): Promise<void> {
  startPromise ??= c.start();
  return startPromise;
}

// Output goes to the log (the container's tee) and to every attached client, at the pace of the slowest. With a
// terminal there is one stream (stdout).
const outputs = [c.stdout, c.stderr].filter((x) => x !== null);
for (const [name, stream] of [['stdout', c.stdout], ['stderr', c.stderr]] as const) {
  if (!stream) continue;
  stream.on('data', (chunk: Buffer) => {
    const frame = encodeFrame(FRAME[name], chunk);
    for (const cl of clients) if (cl[name] && !cl.sock.destroyed) cl.sock.write(frame);
    const waiting = [...clients].filter((cl) => !cl.sock.destroyed && cl.sock.writableNeedDrain);
    if (waiting.length === 0) return;
    for (const o of outputs) o.pause();
    let left = waiting.length;
    const resume = () => {
      if (--left > 0) return;
      for (const o of outputs) o.resume();
    };
    for (const cl of waiting) {
      let once = false;
      const done = () => {
        if (once) return;
        once = true;
        resume();
      };
      cl.sock.once('drain', done);
      cl.sock.once('close', done);
    }
  });
}
const outputEnded = Promise.all(outputs.map((s) => new Promise<void>((r) => {
  s.once('end', () => r());
  s.once('close', () => r());
  s.once('error', () => r());
})));

// Half-open: a client that ended its input still reads the container's output.
const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
  sock.on('error', () => clients.forEach((cl) => cl.sock === sock && clients.delete(cl)));
  let head = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(0x0a);
    if (nl < 0) return;
    sock.off('data', onData);
    sock.pause();
    let req: ShimRequest;
    try {
      req = JSON.parse(head.subarray(0, nl).toString('utf8')) as ShimRequest;
    } catch {
      sock.destroy();
      return;
    }
    void serve(sock, req, head.subarray(nl + 1));
  };
  sock.on('data', onData);
  sock.on('end', () => {
    if (sock.listenerCount('data') === 1 && head.indexOf(0x0a) < 0) sock.destroy();
  });
});

let stdinClosed = false;

/** Closes the container's stdin (the program reads EOF; with a terminal, typing stops). */
function closeStdin(): void {
  if (stdinClosed) return;
  stdinClosed = true;
  c.stdin?.end();
}

/**
 * A client's input: kind 0 frames go to the container's stdin (the client waits while the container does not
 * read), `stdin-end` ends it when the container's stdin is once-only (`docker run -i`). A client that just goes
 * away detached: its end is not the container's EOF.
 */
function pumpInput(sock: Socket, rest: Buffer): void {
  const decoder = new FrameDecoder();
  const feed = (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (f.kind === FRAME.stdin) {
        if (stdinClosed || !c.stdin || c.stdin.destroyed) continue;
        if (!c.stdin.write(f.payload)) {
          sock.pause();
          c.stdin.once('drain', () => sock.resume());
        }
      } else if (f.kind === FRAME.message) {
        const m = JSON.parse(f.payload.toString('utf8')) as ClientMessage;
        if (m.type === 'stdin-end' && launch.stdinOnce) closeStdin();
      }
    }
  };
  c.stdin?.on('error', () => undefined); // a program that exits with input pending: EPIPE
  if (rest.length) feed(rest);
  sock.on('data', feed);
  sock.resume();
}

async function serve(sock: Socket, req: ShimRequest, rest: Buffer): Promise<void> {
  if (req.op === 'resize') {
    try {
      await c.resize({ rows: req.rows, columns: req.columns });
      sock.end(encodeMessage({ type: 'done' }));
    } catch (e) {
      sock.end(encodeMessage({ type: 'error', error: toWire(e) }));
    }
    return;
  }
  if (req.op === 'start') {
    try {
      await start();
      sock.end(encodeMessage({ type: 'started' }));
    } catch (e) {
      sock.end(encodeMessage({ type: 'error', error: toWire(e) }));
    }
    return;
  }
  if (req.op === 'attach') {
    if (exited) {
      sock.end(encodeMessage({ type: 'exit', ...exited }));
      return;
    }
    const cl: Client = { sock, stdout: req.stdout ?? true, stderr: req.stderr ?? true };
    clients.add(cl);
    sock.once('close', () => clients.delete(cl));
    if (req.stdin) pumpInput(sock, rest);
    else sock.resume();
    if (req.start) {
      try {
        await start();
        sock.write(encodeMessage({ type: 'started' }));
      } catch (e) {
        sock.write(encodeMessage({ type: 'error', error: toWire(e) }));
      }
    }
    return;
  }
  sock.destroy();
}

await withSocketPath(dir, (path) => new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(path, () => {
    chmodSync(path, 0o600);
    resolve();
  });
}));

const created: ShimMessage = { type: 'created', id: c.id, name: c.name };
if (launch.start) {
  try {
    await start();
    report(created);
  } catch (e) {
    report({ type: 'error', error: toWire(e) }, created);
  }
} else {
  report(created);
}

const exit = await c.wait();
// A start in flight reports its failure to its client before the exit does.
await startPromise?.catch(() => undefined);
await new Promise((r) => setImmediate(r));
exited = exit;
// The rest of the output (already in the pipes when the init died) reaches the clients before the exit.
await Promise.race([outputEnded, new Promise((r) => setTimeout(r, 1000))]);
const bye = encodeMessage({ type: 'exit', ...exited });
await Promise.all([...clients].map((cl) => new Promise<void>((resolve) => {
  if (cl.sock.destroyed) return resolve();
  cl.sock.end(bye, () => resolve());
  setTimeout(resolve, 2000);
})));
server.close();
try {
  unlinkSync(join(dir, 'shim.sock'));
} catch {
  // removed with the container
}
if (launch.autoRemove) await c.remove({ force: true }).catch(fail);
process.exit(0);
