/**
 * The runtimes the start benchmark compares, behind one interface: berth in this process (its `run` path and its
 * create/start/wait/remove path) and the CLI peers crun and runc driven through {@link PeerDriver}s.
 * @module
 */
import { Container } from '../lib/index.js';
import type { PeerDriver, PeerResult } from './peer-driver.js';

/** One runtime under test; every container runs `/bin/true` and must exit 0. */
export interface Runtime {
  /** Name in the report. */
  readonly name: string;
  /** Starts one container and waits for its exit and removal; the latency in ms. Throws when it fails. */
  once(): Promise<number>;
  /** Runs `total` containers keeping `width` of them in flight; the wall time in ms. */
  batch(total: number, width: number): Promise<number>;
}

/** What a berth runtime needs: its private state root, the rootfs, and a signal that ends the benchmark early. */
export interface BerthContext {
  root: string;
  rootfs: string;
  signal: AbortSignal;
  /** Per-container limit, so that a hung container fails the runtime instead of hanging the benchmark. */
  timeoutMs: number;
  /** Every container id berth gave out: the cleanup looks for cgroups by these names, and only these. */
  ids: Set<string>;
}

const TRUE = ['/bin/true'];

function checkExit(name: string, exitCode: number, detail = ''): void {
  if (exitCode !== 0) throw new Error(`${name}: /bin/true exited with ${exitCode}${detail ? `: ${detail}` : ''}`);
}

/**
 * Runs `task` `total` times with at most `width` running at once, and resolves with the wall time in ms. After a
 * failure no new task starts, and the first error is thrown only once all running tasks have settled, so that
 * nothing is still in flight when the caller cleans up.
 */
export async function pool(total: number, width: number, task: () => Promise<unknown>): Promise<number> {
  let started = 0;
  let failed = false;
  const worker = async () => {
    while (started < total && !failed) {
      started++;
      try {
        await task();
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const t0 = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: Math.min(width, total) }, worker));
  const wall = performance.now() - t0;
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return wall;
}

function berthSignal(ctx: BerthContext): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.timeoutMs)]);
}

/** `Container.run()`: the one-call path, create+start+wait+remove inside berth. */
export function berthRun(ctx: BerthContext): Runtime {
  const name = 'berth run';
  const once = async () => {
    const t0 = performance.now();
    const r = await Container.run({
      root: ctx.root, rootfs: ctx.rootfs, cmd: TRUE, stdout: 'ignore', stderr: 'ignore', signal: berthSignal(ctx),
    });
    const ms = performance.now() - t0;
    ctx.ids.add(r.id);
    checkExit(name, r.exitCode);
    return ms;
  };
  return { name, once, batch: (total, width) => pool(total, width, once) };
}

/**
 * `create()` + `start()` + `wait()` + `remove()`: the split path, where the init waits before execve until
 * start() releases it (an extra round trip that `run` skips).
 */
export function berthSplit(ctx: BerthContext): Runtime {
  const name = 'berth split';
  const once = async () => {
    const signal = berthSignal(ctx);
    const t0 = performance.now();
    const c = await Container.create({
      root: ctx.root, rootfs: ctx.rootfs, cmd: TRUE, stdout: 'ignore', stderr: 'ignore', signal,
    });
    ctx.ids.add(c.id);
    let exitCode: number;
    try {
      await c.start({ signal });
      exitCode = (await c.wait({ signal })).exitCode;
    } finally {
      await c.remove({ force: true });
    }
    const ms = performance.now() - t0;
    checkExit(name, exitCode);
    return ms;
  };
  return { name, once, batch: (total, width) => pool(total, width, once) };
}

/** Unique container ids for the peers; the prefix is also how the cleanup recognises their leftovers. */
export class IdSource {
  #count = 0;
  constructor(readonly prefix: string) {}
  next(runtime: string): string {
    return `${this.prefix}${runtime}-${++this.#count}`;
  }
}

/**
 * Rejects when `promise` takes longer than `ms`: a hung peer fails its runtime; the cleanup then kills the
 * driver and deletes the container.
 */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no exit after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface PeerContext {
  /** The runtime's binary name, also its name in the report (`crun`, `runc`). */
  binary: string;
  /** At least as many drivers as the batch width; the first one runs the sequential measurements. */
  drivers: readonly PeerDriver[];
  ids: IdSource;
  signal: AbortSignal;
  timeoutMs: number;
}

/** A CLI peer: `<binary> run -b <bundle> <id>`, timed by its driver around the runtime's own execution. */
export function peerRuntime(ctx: PeerContext): Runtime {
  const exec = async (driver: PeerDriver): Promise<PeerResult> => {
    if (ctx.signal.aborted) throw new Error('interrupted');
    const r = await withTimeout(driver.run(ctx.binary, ctx.ids.next(ctx.binary)), ctx.timeoutMs, ctx.binary);
    checkExit(ctx.binary, r.exitCode, r.error || 'no stderr');
    return r;
  };
  return {
    name: ctx.binary,
    once: async () => {
      const r = await exec(ctx.drivers[0]!);
      return (r.endUs - r.startUs) / 1000;
    },
    batch: (total, width) => peerBatch(ctx.drivers.slice(0, width), total, exec),
  };
}

/**
 * `total` runs over the drivers (one container at a time each, so `drivers.length` in flight). Each driver keeps
 * one command queued in its stdin besides the running one, so it never idles waiting for a round trip through
 * Node. The wall time is taken from the drivers' own clocks: first start to last end.
 */
async function peerBatch(
  drivers: readonly PeerDriver[],
  total: number,
  exec: (driver: PeerDriver) => Promise<PeerResult>,
): Promise<number> {
  let issued = 0;
  let failed = false;
  let first = Infinity;
  let last = -Infinity;
  const feed = async (driver: PeerDriver) => {
    const queue: Promise<PeerResult>[] = [];
    const issue = () => {
      if (issued >= total || failed) return;
      issued++;
      const p = exec(driver);
      // Handled when its turn comes; this only keeps an early rejection (timeout) from counting as unhandled.
      p.catch(() => undefined);
      queue.push(p);
    };
    issue();
    issue();
    let error: unknown;
    // Drains the queue even after a failure, so that no run is still in flight when the caller cleans up.
    while (queue.length > 0) {
      try {
        const r = await queue.shift()!;
        first = Math.min(first, r.startUs);
        last = Math.max(last, r.endUs);
      } catch (e) {
        failed = true;
        error ??= e;
      }
      issue();
    }
    if (error !== undefined) throw error;
  };
  const settled = await Promise.allSettled(drivers.map(feed));
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return (last - first) / 1000;
}
