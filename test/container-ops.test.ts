// top, pause/unpause (the cgroup freezer, v1 and v2) and rename (state root, names, network hosts files, events).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, ContainerStateError, NameConflictError, Network, psTable, type BerthEvent } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';

const v1 = tempRoot('ops');
const v2 = tempRoot('ops-v2');
afterAll(async () => {
  await v1.cleanup();
  await v2.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Scheduler state (stat field 3), wait channel and CPU ticks of a process, from /proc. */
function procState(pid: number): { state: string; wchan: string; ticks: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, wchan: readFileSync(`/proc/${pid}/wchan`, 'utf8'), ticks: Number(f[11]) + Number(f[12]) };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !check(); i++) await sleep(10);
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

async function pauseAndResume(root: string, rootfs: string, frozenState: string, frozenWchan: RegExp): Promise<void> {
  await using c = await Container.create({ root, rootfs, cmd: ['sh', '-c', 'while :; do :; done'] });
  await c.start();
  const pid = c.pid!;
  await until(() => procState(pid).ticks > 2, 'the loop to use CPU');
  expect(procState(pid).state).toBe('R');
  const events: BerthEvent[] = [];
  const since = new Date();

  await c.pause();
  expect(c.paused).toBe(true);
  expect((await c.inspect()).paused).toBe(true);
  expect((await c.inspect()).status).toBe('running');
  expect((await Container.list({ root })).find((i) => i.id === c.id)!.paused).toBe(true);
  // Frozen: the kernel shows the task stopped in the freezer, and it gets no CPU time at all.
  const frozen = procState(pid);
  expect(frozen.state).toBe(frozenState);
  expect(frozen.wchan).toMatch(frozenWchan);
  await sleep(300);
  expect(procState(pid).ticks).toBe(frozen.ticks);
  await expect(c.pause()).rejects.toThrow(/already paused/);

  // Another process's view (a Container from get()) can unpause it.
  const other = await Container.get(c.id, { root });
  expect(other.paused).toBe(true);
  await other.unpause();
  await until(() => procState(pid).ticks > frozen.ticks + 5, 'the loop to run again');
  expect(procState(pid).state).toBe('R');
  expect(c.paused).toBe(false);
  await expect(c.unpause()).rejects.toThrow(/not paused/);

  // A paused container can still be killed (v1 keeps SIGKILL pending until thawed: berth thaws it).
  await c.pause();
  await c.kill('SIGKILL');
  expect((await c.wait()).signal).toBe('SIGKILL');
  for await (const e of Container.events({ root, since, until: new Date(Date.now() + 1), filters: { container: [c.id] } })) events.push(e);
  expect(events.map((e) => e.action)).toEqual(['pause', 'unpause', 'pause', 'kill', 'die']);
}

describe('pause and unpause', () => {
  it('freezes every process of the container and thaws it (cgroup v1 freezer)', async () => {
    await pauseAndResume(v1.root, v1.rootfs, 'D', /refrigerator/);
  });

  it.runIf(existsSync('/sys/fs/cgroup/unified/cgroup.procs'))('freezes and thaws with cgroup.freeze (cgroup v2)', async () => {
    process.env.BERTH_CGROUP_VERSION = '2';
    process.env.BERTH_CGROUP_MOUNT = '/sys/fs/cgroup/unified';
    try {
      await pauseAndResume(v2.root, v2.rootfs, 'S', /signal|freezer/);
    } finally {
      delete process.env.BERTH_CGROUP_VERSION;
      delete process.env.BERTH_CGROUP_MOUNT;
    }
  });

  it('refuses to pause a container that is not running', async () => {
    await using c = await Container.create({ root: v1.root, rootfs: v1.rootfs, cmd: ['true'] });
    await expect(c.pause()).rejects.toBeInstanceOf(ContainerStateError);
  });
});

describe('top', () => {
  it('lists the container\'s processes with ps -ef fields', async () => {
    await using c = await Container.create({ root: v1.root, rootfs: v1.rootfs, user: '1000:1000', cmd: ['sh', '-c', 'sleep 100 & sleep 200 & wait'] });
    await c.start();
    // Three processes, and both children past their exec (a forked child shows the shell's command line first).
    await until(() => c.top().filter((p) => p.command.startsWith('sleep ')).length === 2, 'three processes, two of them sleeping');
    const procs = c.top();
    expect(procs.map((p) => p.command)).toEqual(['sh -c sleep 100 & sleep 200 & wait', 'sleep 100', 'sleep 200']);
    expect(procs[0]!.pid).toBe(c.pid);
    expect(procs[1]!.ppid).toBe(c.pid);
    expect(procs.every((p) => p.uid === 1000 && p.tty === '?')).toBe(true);
    expect(Math.abs(procs[0]!.startedAt.getTime() - Date.now())).toBeLessThan(10_000);
    const table = psTable(procs);
    expect(table.titles).toEqual(['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
    expect(table.processes[1]).toEqual([procs[1]!.user, String(procs[1]!.pid), String(c.pid), '0', expect.stringMatching(/^\d\d:\d\d$/), '?', '00:00:00', 'sleep 100']);
    // From another process's view too.
    expect((await Container.get(c.id, { root: v1.root })).top().map((p) => p.pid)).toEqual(procs.map((p) => p.pid));
    await c.stop({ timeout: 0 });
    expect(() => c.top()).toThrow(/not running/);
  });
});

describe('rename', () => {
  it('renames in the state root: the new name finds it, the old one is free, the owner keeps it', async () => {
    const since = new Date();
    await using c = await Container.create({ root: v1.root, rootfs: v1.rootfs, name: 'before', cmd: ['sleep', '100'] });
    await c.start();
    await (await Container.get('before', { root: v1.root })).rename('after');
    await expect(Container.get('before', { root: v1.root })).rejects.toThrow(/no such container/);
    expect((await Container.get('after', { root: v1.root })).id).toBe(c.id);
    // The owner's next write of the record (at exit) keeps the name another process gave.
    await c.stop({ timeout: 0 });
    expect((await (await Container.get(c.id, { root: v1.root })).inspect()).name).toBe('after');
    expect(c.name).toBe('after');
    // The old name is free again; a taken one is refused.
    await using other = await Container.create({ root: v1.root, rootfs: v1.rootfs, name: 'before', cmd: ['true'] });
    await expect(other.rename('after')).rejects.toBeInstanceOf(NameConflictError);
    await expect(other.rename('bad name')).rejects.toThrow(/name/);
    const renames: BerthEvent[] = [];
    for await (const e of Container.events({ root: v1.root, since, until: new Date(Date.now() + 1), filters: { event: ['rename'] } })) renames.push(e);
    expect(renames.map((e) => [e.attributes.oldName, e.attributes.name])).toEqual([['before', 'after']]);
  });

  it('renames on a user network: the other containers resolve the new name', async () => {
    const { root, rootfs } = v1;
    const net = await Network.create({ root, name: 'ops-net' });
    try {
      await using a = await Container.create({ root, rootfs, name: 'alpha', network: 'ops-net', cmd: ['sleep', '100'] });
      await a.start();
      await using b = await Container.create({ root, rootfs, name: 'beta', network: 'ops-net', cmd: ['sleep', '100'] });
      await b.start();
      const hostsOfB = () => readFileSync(join(root, 'containers', b.id, 'hosts'), 'utf8');
      expect(hostsOfB()).toMatch(/\balpha\b/);
      await a.rename('gamma');
      expect(hostsOfB()).toMatch(/\bgamma\b/);
      expect(hostsOfB()).not.toMatch(/\balpha\b/);
      await a.remove({ force: true });
      await b.remove({ force: true });
    } finally {
      await net.remove();
    }
  });
});
