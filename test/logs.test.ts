// Logs: every container's stdout/stderr recorded in Docker's json-file format with size-based rotation, read back
// (tail, since/until, streams, timestamps, follow) by the owner or by any other process, also after the owner exited.
import { existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, ContainerStateError, type LogEntry } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { nodeScript } from './helpers/node-script.js';

const { root, rootfs, cleanup } = tempRoot('logs');
const scripts = mkdtempSync(join(tmpdir(), 'berth-logs-scripts-'));
afterAll(async () => {
  await cleanup();
  rmSync(scripts, { recursive: true, force: true });
});

async function all(it: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const logFile = (id: string) => join(root, 'containers', id, `${id}-json.log`);

/** Runs a Node script in a process of its own (see helpers/node-script.ts). */
const node = (body: string) => nodeScript(scripts, root, rootfs, body);

describe('logs', () => {
  it('records stdout and stderr in Docker\'s json-file format while the caller still gets its streams', async () => {
    await using c = await Container.create({ root, rootfs, cmd: ['sh', '-c', 'echo out1; echo err1 >&2; echo out2; printf tail'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    const ended = new Promise((r) => c.stdout!.once('end', r));
    await c.start();
    await c.wait();
    await ended;
    expect(out).toBe('out1\nout2\ntail');
    const lines = readFileSync(logFile(c.id), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['log', 'stream', 'time']);
      expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    }
    // The order between the two pipes is the order berth read them; within each stream it is exact.
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.log)).toEqual(['out1\n', 'out2\n', 'tail']);
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.log)).toEqual(['err1\n']);
    const entries = await all(c.logs());
    expect(entries.map((e) => e.log).sort()).toEqual(['err1\n', 'out1\n', 'out2\n', 'tail']);
    expect((await c.inspect()).log).toEqual({ driver: 'json-file', maxSize: 20 * 1024 * 1024, maxFile: 5 });
  });

  it('filters by stream, tail, since and until, and adds timestamps', async () => {
    await using c = await Container.create({
      root, rootfs, stdout: 'ignore', stderr: 'ignore',
      cmd: ['sh', '-c', 'for i in 1 2 3; do echo o$i; echo e$i >&2; done; sleep 0.3; echo late'],
    });
    await c.start();
    await c.wait();
    const all5 = await all(c.logs({ follow: true }));
    expect(all5.map((e) => e.log).filter((l) => l.startsWith('o') || l === 'late\n')).toEqual(['o1\n', 'o2\n', 'o3\n', 'late\n']);
    expect((await all(c.logs({ stderr: false }))).map((e) => e.log)).toEqual(['o1\n', 'o2\n', 'o3\n', 'late\n']);
    expect((await all(c.logs({ stdout: false, tail: 2 }))).map((e) => e.log)).toEqual(['e2\n', 'e3\n']);
    expect((await all(c.logs({ tail: 0 })))).toEqual([]);
    const late = all5.at(-1)!;
    expect((await all(c.logs({ since: late.time }))).map((e) => e.log)).toEqual(['late\n']);
    expect((await all(c.logs({ until: late.time }))).map((e) => e.log)).not.toContain('late\n');
    const stamped = await all(c.logs({ timestamps: true, tail: 1 }));
    expect(stamped[0]!.log).toBe(`${late.time} late\n`);
  });

  it('follows while the container writes and ends when it exits', async () => {
    await using c = await Container.create({
      root, rootfs, stdout: 'ignore',
      cmd: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.1; done'],
    });
    await c.start();
    const seen: { log: string; at: number }[] = [];
    const t0 = Date.now();
    for await (const e of c.logs({ follow: true })) seen.push({ log: e.log, at: Date.now() - t0 });
    expect(seen.map((s) => s.log)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line${i}\n`));
    // Lines arrived as they were written, not all at the end.
    expect(seen[0]!.at).toBeLessThan(seen[7]!.at - 400);
    expect((await c.inspect()).status).toBe('exited');
  });

  it('rotates by size and keeps max-file files, reading across them in order', async () => {
    await using c = await Container.create({
      root, rootfs, stdout: 'ignore', log: { maxSize: '2k', maxFile: 3 },
      cmd: ['sh', '-c', 'i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done'],
    });
    await c.start();
    await c.wait();
    await all(c.logs({ follow: true })); // until the writer is done
    const dir = join(root, 'containers', c.id);
    const files = readdirSync(dir).filter((f) => f.startsWith(`${c.id}-json.log`)).sort();
    expect(files).toEqual([`${c.id}-json.log`, `${c.id}-json.log.1`, `${c.id}-json.log.2`]);
    for (const f of files) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(2048);
    const entries = await all(c.logs());
    const numbers = entries.map((e) => Number(/line (\d+)/.exec(e.log)![1]));
    expect(numbers.at(-1)).toBe(299);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i)); // contiguous: nothing lost between files
    expect(numbers.length).toBeGreaterThan(60);
    expect((await all(c.logs({ tail: 5 }))).map((e) => e.log)).toEqual([295, 296, 297, 298, 299].map((n) => `line ${n}\n`));
  });

  it('splits lines longer than 16 KiB as Docker does', async () => {
    await using c = await Container.create({ root, rootfs, stdout: 'ignore', cmd: ['sh', '-c', 'head -c 40000 /dev/zero | tr "\\0" x; echo'] });
    await c.start();
    await c.wait();
    const entries = await all(c.logs({ follow: true }));
    expect(entries.map((e) => e.log.length)).toEqual([16384, 16384, 40000 - 32768 + 1]);
    expect(entries.map((e) => e.log).join('')).toBe(`${'x'.repeat(40000)}\n`);
  });

  it('does not log streams sent straight to an fd, nor anything with the none driver', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-logs-fd-'));
    const fd = openSync(join(dir, 'out'), 'w');
    try {
      await using c = await Container.create({ root, rootfs, stdout: fd, stderr: 'ignore', cmd: ['sh', '-c', 'echo to-fd; echo to-log >&2'] });
      await c.start();
      await c.wait();
      expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('to-fd\n');
      expect((await all(c.logs({ follow: true }))).map((e) => [e.stream, e.log])).toEqual([['stderr', 'to-log\n']]);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
    await using quiet = await Container.create({ root, rootfs, log: { driver: 'none' }, cmd: ['echo', 'nothing'] });
    let out = '';
    quiet.stdout!.on('data', (d) => (out += d));
    await quiet.start();
    await quiet.wait();
    await new Promise((r) => setTimeout(r, 20));
    expect(out).toBe('nothing\n');
    expect(existsSync(logFile(quiet.id))).toBe(false);
    expect(() => quiet.logs()).toThrow(ContainerStateError);
  });

  it('keeps logging a detached container after its owner exited; another process reads and follows it', async () => {
    const r = await node(`
      const c = await Container.create({ root, rootfs, name: 'logs-detached', detached: true,
        cmd: ['sh', '-c', 'echo first; i=0; while [ $i -lt 6 ]; do sleep 0.15; echo tick$i; i=$((i+1)); done; echo bye >&2; exit 4'] });
      await c.start();
      console.log(c.id);`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    // The owner is gone; the log monitor goes on recording, and the exit is recorded when the init ends.
    const c = await Container.get('logs-detached', { root });
    const entries = await all(c.logs({ follow: true, signal: AbortSignal.timeout(10_000) }));
    expect(entries.map((e) => e.log)).toEqual(['first\n', ...[0, 1, 2, 3, 4, 5].map((i) => `tick${i}\n`), 'bye\n']);
    expect(entries.at(-1)!.stream).toBe('stderr');
    // Recorded by the monitor without anyone opening the state root: exited, with a die event.
    for (let i = 0; i < 50 && (await c.inspect()).status !== 'exited'; i++) await new Promise((res) => setTimeout(res, 20));
    expect((await c.inspect()).status).toBe('exited');
    const events: string[] = [];
    for await (const e of Container.events({ root, since: 0, filters: { container: [id] }, signal: AbortSignal.timeout(5000) })) {
      events.push(e.action);
      if (e.action === 'die') break;
    }
    expect(events).toEqual(['create', 'start', 'die']);
    // And from yet another process, reading the files only.
    const again = await node(`
      const c = await Container.get('logs-detached', { root });
      for await (const e of c.logs({ tail: 2 })) process.stdout.write(e.stream + ':' + e.log);`);
    expect(again.stdout).toBe('stdout:tick5\nstderr:bye\n');
    await c.remove();
  });
});
