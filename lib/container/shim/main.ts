/**
 * Entry point of a container shim (see ./shim.ts): creates the container described on stdin (or takes over an
 * exited one whose shim is gone), reports on stdout, then owns it — holds its start pipe, logs its output, passes
 * it to attached clients, reaps it and records its exit, starts it again when its restart policy or a client says
 * so — and exits once it exited with no restart to follow (removing it first when asked, as `docker run --rm`).
 * @module
 */
import { appendFileSync, chmodSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Container, runHandles, startHere, type ExitInfo, type RunHandles } from '../container.js';
import type { ContainerOptions } from '../options.js';
import { isAlive, processStartTime, StateRoot } from '../state.js';
import {
  encodeFrame, encodeMessage, FRAME, FrameDecoder, toWire, withSocketPath, type ClientMessage, type ShimMessage, type ShimRequest,
} from './protocol.js';
import { markMadeByShim, type ShimLaunch } from './shim.js';

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

/**
 * A taken-over container's previous owner (its last shim, exiting) may still be finishing: wait for it (5 s at
 * most). Returns false when somebody started the container meanwhile.
 */
async function previousOwnerGone(root: string, id: string): Promise<boolean> {
  const states = new StateRoot(root);
  for (let i = 0; i < 250; i++) {
    const state = states.readState(id);
    if (!state) return true; // removed: the start says so
    if (state.status !== 'exited' && state.process && isAlive(state.process)) return false;
    if (!isAlive(state.owner)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true; // still alive: the start refuses, naming it
}

interface Client {
  sock: Socket;
  stdout: boolean;
  stderr: boolean;
  /** The run it is attached to; undefined while the start it asked for is under way (it follows the next run). */
  run: object | undefined;
}

const launch = await readRequest();
process.title = 'berth-shim';
let container: Container;
try {
  if (launch.takeover) {
    container = await Container.get(launch.takeover, { root: launch.root });
  } else {
    // stdin stays open for attached clients when asked (`-i`); the shim holds it for the container's lifetime.
    const stdin = launch.options?.stdin === 'pipe' ? 'pipe' : 'ignore';
    const options: ContainerOptions = { ...launch.options, detached: true, stdin, stdout: 'pipe', stderr: 'pipe' };
    container = await Container.create({ ...options, root: launch.root });
    markMadeByShim(join(launch.root, 'containers', container.id));
  }
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
/** The exit of the last run, until another one starts. */
let exited: ExitInfo | undefined;
/** The run the shim follows (none yet for a taken-over container not started yet). */
let run: RunHandles | undefined = runHandles(c);
let startPromise: Promise<void> | undefined;
let stdinClosed = false;
let outputEnded: Promise<unknown> = Promise.resolve();
let runStarted: () => void = () => undefined;

/** Starts the container: a created one, or an exited one again (in this process). Concurrent callers share it. */
function start(): Promise<void> {
  startPromise ??= (async () => {
    let { status, pid } = await c.inspect();
    // Its init died and this shim has not reaped it yet (a stop from another process, on a loaded host): that
    // run is over, and this start is for the next one.
    if (status === 'running' && pid !== null && processStartTime(pid) === undefined) {
      await run?.exit;
      status = (await c.inspect()).status;
    }
    if (status === 'running') return; // as `docker start` of a running container: nothing to do
    await startHere(c);
    followRun();
  })().finally(() => {
    startPromise = undefined;
  });
  return startPromise;
}

/** Follows the container's current run, if it is a new one: its output, its stdin. */
function followRun(): void {
  const current = runHandles(c);
  if (!current || current.key === run?.key) return;
  run = current;
  exited = undefined;
  stdinClosed = false;
  tapOutputs();
  runStarted();
}

// Output goes to the log (the container's tee) and to every attached client, at the pace of the slowest. With a
// terminal there is one stream (stdout). Each run has streams of its own.
function tapOutputs(): void {
  c.stdin?.on('error', () => undefined); // a program that exits with input pending: EPIPE
  const key = run?.key;
  const outputs = [c.stdout, c.stderr].filter((x) => x !== null);
  for (const [name, stream] of [['stdout', c.stdout], ['stderr', c.stderr]] as const) {
    if (!stream) continue;
    stream.on('data', (chunk: Buffer) => {
      const frame = encodeFrame(FRAME[name], chunk);
      const readers = [...clients].filter((cl) => cl[name] && !cl.sock.destroyed && (cl.run === key || cl.run === undefined));
      for (const cl of readers) cl.sock.write(frame);
      const waiting = readers.filter((cl) => cl.sock.writableNeedDrain);
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
  outputEnded = Promise.all(outputs.map((s) => new Promise<void>((r) => {
    s.once('end', () => r());
    s.once('close', () => r());
    s.once('error', () => r());
  })));
}
if (run) tapOutputs();

/** Connections accepted whose request is not served yet (the shim does not exit under them). */
let pending = 0;

// Half-open: a client that ended its input still reads the container's output.
const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
  pending++;
  let counted = true;
  const settle = () => {
    if (counted) pending--;
    counted = false;
  };
  sock.once('close', settle);
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
    void serve(sock, req, head.subarray(nl + 1)).finally(settle);
  };
  sock.on('data', onData);
  sock.on('end', () => {
    if (sock.listenerCount('data') === 1 && head.indexOf(0x0a) < 0) sock.destroy();
  });
});

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
        const stdin = c.stdin;
        if (stdinClosed || !stdin || stdin.destroyed) continue;
        if (!stdin.write(f.payload)) {
          sock.pause();
          stdin.once('drain', () => sock.resume());
        }
      } else if (f.kind === FRAME.message) {
        const m = JSON.parse(f.payload.toString('utf8')) as ClientMessage;
        if (m.type === 'stdin-end' && launch.stdinOnce) closeStdin();
      }
    }
  };
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
    // A client that starts the container (`start -a`) attaches to its next run.
    if (exited && !req.start) {
      sock.end(encodeMessage({ type: 'exit', ...exited }));
      return;
    }
    const cl: Client = { sock, stdout: req.stdout ?? true, stderr: req.stderr ?? true, run: req.start ? undefined : run?.key };
    clients.add(cl);
    sock.once('close', () => clients.delete(cl));
    // A client that starts the container types into the run it starts: its input waits (in the socket) until then.
    if (!req.start) {
      if (req.stdin) pumpInput(sock, rest);
      else sock.resume();
      return;
    }
    if (!req.stdin) sock.resume();
    try {
      await start();
      cl.run = run?.key;
      sock.write(encodeMessage({ type: 'started' }));
    } catch (e) {
      // Nothing runs for it to follow (a failed exec is followed by the run's exit, which ends it too).
      sock.end(encodeMessage({ type: 'error', error: toWire(e) }));
      return;
    }
    if (req.stdin) pumpInput(sock, rest);
    return;
  }
  sock.destroy();
}

/** The socket's inode while this shim listens on it (so that it never unlinks a later shim's socket). */
let socketIno: number | undefined;

async function listen(): Promise<void> {
  await withSocketPath(dir, (path) => new Promise<void>((resolve, reject) => {
    try {
      unlinkSync(path); // a stale socket of a shim that died
    } catch {
      // none
    }
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      chmodSync(path, 0o600);
      socketIno = statSync(path).ino;
      resolve();
    });
  }));
}

function unlinkSocket(): void {
  const path = join(dir, 'shim.sock');
  try {
    if (statSync(path).ino === socketIno) unlinkSync(path);
  } catch {
    // removed with the container
  }
}

if (launch.takeover && !(await previousOwnerGone(launch.root, c.id))) {
  // Started meanwhile by someone else (its own shim, restarting it): nothing for this one to do.
  report({ type: 'created', id: c.id, name: c.name });
  process.exit(0);
}
await listen();

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

for (;;) {
  if (!run) {
    if (launch.start) break; // its start failed before anything ran
    // A taken-over container waits for the client that asked for it to start it (attach), briefly.
    const started = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 30_000);
      runStarted = () => {
        clearTimeout(timer);
        resolve(true);
      };
      if (startPromise) void startPromise.catch(() => resolve(false));
    });
    runStarted = () => undefined;
    if (!started) {
      await startPromise?.catch(() => undefined);
      if (!run) break;
    }
    continue;
  }
  const current: RunHandles = run;
  const exit = await current.exit;
  // A start in flight reports its failure to its client before the exit does.
  await startPromise?.catch(() => undefined);
  await new Promise((r) => setImmediate(r));
  if (run === current) exited = exit;
  // The rest of the output (already in the pipes when the init died) reaches the clients before the exit.
  await Promise.race([outputEnded, new Promise((r) => setTimeout(r, 1000))]);
  // An attach session ends with the run it attached to (as docker attach does when a container stops).
  const bye = encodeMessage({ type: 'exit', ...exit });
  // Clients that asked for the next run (a start under way) stay.
  const ending = [...clients].filter((cl) => cl.run === current.key);
  for (const cl of ending) clients.delete(cl);
  await Promise.all(ending.map((cl) => new Promise<void>((resolve) => {
    if (cl.sock.destroyed) return resolve();
    cl.sock.end(bye, () => resolve());
    setTimeout(resolve, 2000);
  })));
  if (await current.next()) {
    followRun();
    continue;
  }
  // No restart follows. A start asked for meanwhile (by a client) keeps the shim: it follows that run.
  await startPromise?.catch(() => undefined);
  if (run !== current) continue;
  server.close();
  unlinkSocket();
  // Requests accepted before the close are served (a start among them keeps the shim), however loaded the host.
  for (let i = 0; i < 1000 && pending > 0; i++) await new Promise((r) => setTimeout(r, 10));
  await startPromise?.catch(() => undefined);
  if (run !== current) {
    await listen();
    continue;
  }
  break;
}
server.close();
unlinkSocket();
if (launch.autoRemove) await c.remove({ force: true }).catch(fail);
process.exit(0);
