// cgroup drivers against the real kernel (run as root). On this hybrid VM the v1 driver is exercised fully, the v2
// driver for real on /sys/fs/cgroup/unified (no controllers there), and v2 controller-file values on a fake
// hierarchy in a temp dir, since no v2 controller can be enabled on this host.
import { describe, it, expect, afterEach, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CgroupError } from '../lib/errors.js';
import {
  CgroupV1Driver,
  CgroupV2Driver,
  detectCgroupDriver,
  detectCgroupVersion,
  parseV1Mountinfo,
  sharesToWeight,
  type Cgroup,
  type CgroupDriver,
} from '../lib/container/cgroup/index.js';

const ROOT = '/sys/fs/cgroup';
// Unique per test file run: leaks are found by this prefix, and concurrent test files must not collide.
const PARENT = `berth-test-cg-${process.pid}`;
const MiB = 1024 * 1024;

const hostVersion = detectCgroupVersion(ROOT);
const V2_MOUNT = hostVersion === 2 ? ROOT : path.join(ROOT, 'unified');
const hasV2 = fs.existsSync(path.join(V2_MOUNT, 'cgroup.controllers'));
const v2Controllers = hasV2 ? fs.readFileSync(path.join(V2_MOUNT, 'cgroup.controllers'), 'utf8').split(/\s+/) : [];

// ---- cleanup: every test registers what it makes; afterEach undoes it even when the test failed ----

/** Destroys cgroups, removes temp dirs; run newest first. */
const cleanups: (() => unknown)[] = [];
/** Spawned processes, killed before the cgroups go and awaited after. */
const children: Child[] = [];

afterEach(async () => {
  const errors: unknown[] = [];
  // SIGKILL first but do not wait yet: a task in a frozen v1 cgroup only dies once destroy() thaws it.
  for (const { proc } of children) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  for (const undo of cleanups.splice(0).reverse()) {
    try {
      await undo();
    } catch (err) {
      errors.push(err);
    }
  }
  const exits = Promise.all(children.splice(0).map((c) => c.exited));
  const stuck = await Promise.race([exits.then(() => false), sleep(5000).then(() => true)]);
  if (stuck) errors.push(new Error('a spawned process did not exit after SIGKILL'));
  if (errors.length > 0) throw errors[0];
});

afterAll(() => {
  expect(leftovers()).toEqual([]);
});

/** Directories under /sys/fs/cgroup (depth ≤ 3) whose name starts with this file's parent prefix. */
function leftovers(): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 3) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const full = path.join(dir, e.name);
      if (e.name.startsWith(PARENT)) found.push(full);
      walk(full, depth + 1);
    }
  };
  walk(ROOT, 1);
  return found;
}

function tracked(cg: Cgroup): Cgroup {
  cleanups.push(() => cg.destroy());
  return cg;
}

interface Child {
  proc: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/** Spawns a process that afterEach kills and awaits. */
function spawnTracked(command: string, args: string[]): Child {
  const proc = spawn(command, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  if (proc.pid === undefined) throw new Error(`spawning ${command} failed`);
  const child = { proc, pid: proc.pid, exited, stderr: () => stderr };
  children.push(child);
  return child;
}

/** Moves `pid` into a v1 cgroup through the cgroup's own procs fds (the child's pid, never "0": that is us). */
function moveIntoV1(cg: Cgroup, pid: number): void {
  for (const fd of cg.procsFds) fs.writeSync(fd, String(pid));
}

async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const read = (file: string): string => fs.readFileSync(file, 'utf8').trim();

/** A busy loop that starts spinning after reading a line, so it can be moved into a cgroup first. */
const SPIN = ['-c', 'read x; while :; do :; done'];

/** Checks that a frozen cgroup accrues no CPU time and a thawed one does. */
async function expectFreezeStopsCpu(cg: Cgroup, child: Child): Promise<void> {
  child.proc.stdin?.write('go\n');
  await eventually(() => cg.stats().cpu.usageNanos > 20e6, 'the spinner to use CPU');
  expect(cg.isFrozen()).toBe(false);
  await cg.setFrozen(true);
  expect(cg.isFrozen()).toBe(true);
  const frozenAt = cg.stats().cpu.usageNanos;
  await sleep(200);
  expect(cg.stats().cpu.usageNanos).toBe(frozenAt);
  await cg.setFrozen(false);
  expect(cg.isFrozen()).toBe(false);
  await eventually(() => cg.stats().cpu.usageNanos > frozenAt + 20e6, 'the spinner to run again');
}

// ---- shared, host-independent pieces ----

describe('cgroup names and resources', () => {
  const driver: CgroupDriver = new CgroupV2Driver({ mountPoint: '/nonexistent', parent: PARENT });

  it('rejects names that are not one safe path component', () => {
    for (const bad of ['', 'a/b', '..', '.', 'x..y', 'a\nb']) {
      expect(() => driver.create(bad, {}), JSON.stringify(bad)).toThrow(CgroupError);
    }
    expect(() => new CgroupV2Driver({ parent: 'a/b' })).toThrow(CgroupError);
  });

  it('rejects impossible values before touching the filesystem', () => {
    expect(() => driver.create('x', { memory: { limit: 64 * MiB, swap: 32 * MiB } })).toThrow(/memory\+swap total/);
    expect(() => driver.create('x', { memory: { swap: 64 * MiB } })).toThrow(/needs a memory limit/);
    expect(() => driver.create('x', { cpu: { shares: 1 } })).toThrow(/cpu\.shares/);
    expect(() => driver.create('x', { cpu: { cpus: 'all' } })).toThrow(/cpuset list/);
    expect(() => driver.create('x', { memory: { limit: -5 } })).toThrow(/memory\.limit/);
  });

  it('converts shares to weight with the standard linear formula', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
  });

  it('parses v1 hierarchies from mountinfo', () => {
    const sample = [
      '25 30 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755',
      '31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct',
      '32 25 0:29 / /sys/fs/cgroup/systemd rw shared:5 master:1 - cgroup cgroup rw,xattr,name=systemd,release_agent=/x',
      '33 25 0:30 / /sys/fs/cgroup/my\\040mem rw - cgroup cgroup rw,memory',
      '34 25 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate',
      '35 99 0:28 /sub /var/lib/x/rootfs/sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct',
      '36 25 0:30 /nested /sys/fs/cgroup/memdup rw - cgroup cgroup rw,memory',
    ].join('\n');
    expect(parseV1Mountinfo(sample, '/sys/fs/cgroup')).toEqual([
      { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'] },
      { mountPoint: '/sys/fs/cgroup/systemd', controllers: ['name=systemd'] },
      { mountPoint: '/sys/fs/cgroup/my mem', controllers: ['memory'] },
    ]);
  });
});

describe('detectCgroupDriver', () => {
  it('matches the host layout and can be forced', () => {
    const isCgroup2 = fs.statfsSync(ROOT).type === 0x63677270;
    expect(detectCgroupDriver({ parent: PARENT }).version).toBe(isCgroup2 ? 2 : 1);
    expect(detectCgroupDriver({ version: 2, mountPoint: V2_MOUNT, parent: PARENT }).version).toBe(2);
    if (hasV2) expect(detectCgroupDriver({ mountPoint: V2_MOUNT, parent: PARENT }).version).toBe(2);
  });
});

// ---- v1, for real ----

describe.runIf(hostVersion === 1)('cgroup v1 driver (real kernel)', () => {
  const driver = new CgroupV1Driver({ parent: PARENT });
  const dirsOf = (name: string): string[] => driver.hierarchies.map((h) => path.join(h.mountPoint, PARENT, name));
  const fileOf = (controller: string, name: string, file: string): string => {
    const h = driver.hierarchies.find((x) => x.controllers.includes(controller));
    if (h === undefined) throw new Error(`no ${controller} hierarchy`);
    return path.join(h.mountPoint, PARENT, name, file);
  };

  it('creates a dir in every hierarchy and writes the limits the kernel reads back', async () => {
    const cg = tracked(
      driver.create('limits', {
        memory: { limit: 64 * MiB, swap: 128 * MiB, reservation: 32 * MiB },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
        pids: { limit: 50 },
      }),
    );
    expect(cg.path).toBe(`${PARENT}/limits`);
    expect(cg.cloneIntoFd).toBeUndefined();
    expect(cg.procsFds).toHaveLength(driver.hierarchies.length);
    expect(driver.hierarchies.map((h) => h.controllers.join(','))).toContain('name=systemd');
    for (const dir of dirsOf('limits')) expect(fs.statSync(dir).isDirectory(), dir).toBe(true);

    expect(read(fileOf('memory', 'limits', 'memory.limit_in_bytes'))).toBe(String(64 * MiB));
    if (fs.existsSync(fileOf('memory', 'limits', 'memory.memsw.limit_in_bytes'))) {
      expect(read(fileOf('memory', 'limits', 'memory.memsw.limit_in_bytes'))).toBe(String(128 * MiB));
    }
    expect(read(fileOf('memory', 'limits', 'memory.soft_limit_in_bytes'))).toBe(String(32 * MiB));
    expect(read(fileOf('cpu', 'limits', 'cpu.shares'))).toBe('512');
    expect(read(fileOf('cpu', 'limits', 'cpu.cfs_period_us'))).toBe('100000');
    expect(read(fileOf('cpu', 'limits', 'cpu.cfs_quota_us'))).toBe('50000');
    expect(read(fileOf('cpuset', 'limits', 'cpuset.cpus'))).toBe('0');
    expect(read(fileOf('cpuset', 'limits', 'cpuset.mems'))).toBe('0');
    expect(read(fileOf('pids', 'limits', 'pids.max'))).toBe('50');
    // The shared parent got the root's cpuset so that it (and children) can hold tasks.
    const cpusetRoot = driver.hierarchies.find((h) => h.controllers.includes('cpuset'))?.mountPoint ?? '';
    expect(read(path.join(cpusetRoot, PARENT, 'cpuset.cpus'))).toBe(read(path.join(cpusetRoot, 'cpuset.cpus')));

    expect(driver.list()).toEqual(['limits']);
    expect(driver.open('limits')?.path).toBe(`${PARENT}/limits`);
    expect(driver.open('absent')).toBeUndefined();

    await cg.destroy();
    for (const dir of dirsOf('limits')) expect(fs.existsSync(dir), dir).toBe(false);
    for (const h of driver.hierarchies) expect(fs.existsSync(path.join(h.mountPoint, PARENT))).toBe(false);
    expect(cg.procsFds).toEqual([]);
  });

  it('moves a process in through procsFds and reports it in pids() and stats()', async () => {
    const cg = tracked(driver.create('member', { memory: { limit: 64 * MiB }, pids: { limit: 10 } }));
    const child = spawnTracked('sleep', ['30']);
    moveIntoV1(cg, child.pid);
    cg.releaseSpawnFds();
    cg.releaseSpawnFds();
    expect(cg.procsFds).toEqual([]);

    const membership = read(`/proc/${child.pid}/cgroup`).split('\n').filter((l) => !l.startsWith('0::'));
    expect(membership).toHaveLength(driver.hierarchies.length);
    for (const line of membership) expect(line.endsWith(`:/${PARENT}/member`), line).toBe(true);

    expect(cg.pids()).toEqual([child.pid]);
    const stats = cg.stats();
    expect(stats.pids).toEqual({ current: 1, limit: 10 });
    expect(stats.memory.limit).toBe(64 * MiB);
    expect(stats.memory.maxUsage).not.toBeNull();
    expect(stats.cpu.userNanos).not.toBeNull();
    expect(cg.oomKilled()).toBe(false);

    cg.killAll('SIGTERM');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' });
    await eventually(() => cg.pids().length === 0, 'the cgroup to empty');
  });

  it('reports an unlimited memory and pids limit as null', () => {
    const cg = tracked(driver.create('unlimited', {}));
    const stats = cg.stats();
    expect(stats.memory.limit).toBeNull();
    expect(stats.pids).toEqual({ current: 0, limit: null });
  });

  it('enforces the pids limit', async () => {
    const cg = tracked(driver.create('forkbomb', { pids: { limit: 3 } }));
    const child = spawnTracked('sh', ['-c', 'read x; for i in 1 2 3 4 5 6; do sleep 30 & done; wait']);
    moveIntoV1(cg, child.pid);
    child.proc.stdin?.write('go\n');
    await eventually(() => /fork/i.test(child.stderr()), 'the shell to fail forking');
    // dash gives up (exits) at the first failed fork, bash retries: either way never more than 3 tasks.
    expect(cg.stats().pids.current).toBeGreaterThanOrEqual(2);
    expect(cg.stats().pids.current).toBeLessThanOrEqual(3);
    expect(read(fileOf('pids', 'forkbomb', 'pids.events'))).toMatch(/^max [1-9]/);

    // The orphaned sleeps are not our children any more: only the cgroup still finds them.
    cg.killAll('SIGKILL');
    await child.exited;
    await eventually(() => cg.pids().length === 0, 'every task to die');
  });

  it('detects an OOM kill under a memory+swap limit', { timeout: 20_000 }, async () => {
    const cg = tracked(driver.create('oom', { memory: { limit: 32 * MiB, swap: 32 * MiB } }));
    const hog = `process.stdin.once('data', () => { const keep = []; for (;;) keep.push(Buffer.alloc(${MiB}, 1)); });`;
    const child = spawnTracked(process.execPath, ['-e', hog]);
    moveIntoV1(cg, child.pid);
    expect(cg.oomKilled()).toBe(false);
    child.proc.stdin?.write('go\n');
    expect((await child.exited).signal).toBe('SIGKILL');
    expect(cg.oomKilled()).toBe(true);
    expect(cg.stats().memory.maxUsage).toBeGreaterThan(30 * MiB);
  });

  it('freezes and thaws, and destroy kills a frozen container', { timeout: 20_000 }, async () => {
    const cg = tracked(driver.create('frozen', {}));
    const child = spawnTracked('sh', SPIN);
    moveIntoV1(cg, child.pid);
    await expectFreezeStopsCpu(cg, child);
    expect(read(fileOf('freezer', 'frozen', 'freezer.state'))).toBe('THAWED');

    await cg.setFrozen(true);
    expect(read(fileOf('freezer', 'frozen', 'freezer.state'))).toBe('FROZEN');
    await cg.destroy();
    expect((await child.exited).signal).toBe('SIGKILL');
    for (const dir of dirsOf('frozen')) expect(fs.existsSync(dir), dir).toBe(false);
  });

  it('lets another owner find, open and destroy a frozen, populated leftover', { timeout: 20_000 }, async () => {
    const original = tracked(driver.create('orphan', { pids: { limit: 5 } }));
    const child = spawnTracked('sleep', ['30']);
    moveIntoV1(original, child.pid);
    original.releaseSpawnFds();
    await original.setFrozen(true);

    const later = new CgroupV1Driver({ parent: PARENT });
    expect(later.list()).toEqual(['orphan']);
    const reopened = later.open('orphan');
    expect(reopened?.procsFds).toEqual([]);
    expect(reopened?.pids()).toEqual([child.pid]);
    await reopened?.destroy();
    expect((await child.exited).signal).toBe('SIGKILL');
    expect(later.list()).toEqual([]);
  });

  it('keeps the shared parent while a sibling exists, removes it with the last one, and is idempotent', async () => {
    const a = tracked(driver.create('a', { pids: { limit: 5 } }));
    const b = tracked(driver.create('b', {}));
    await a.destroy();
    await a.destroy();
    for (const dir of dirsOf('a')) expect(fs.existsSync(dir)).toBe(false);
    for (const h of driver.hierarchies) expect(fs.existsSync(path.join(h.mountPoint, PARENT))).toBe(true);
    await b.destroy();
    for (const h of driver.hierarchies) expect(fs.existsSync(path.join(h.mountPoint, PARENT))).toBe(false);
  });

  it('names the file and value the kernel refused, and rolls back what it created', () => {
    let error: unknown;
    try {
      tracked(driver.create('refused', { cpu: { cpus: '4095' } }));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CgroupError);
    expect((error as Error).message).toMatch(
      /^cgroup: writing "4095" to \/sys\/fs\/cgroup\/.*\/refused\/cpuset\.cpus failed: E[A-Z]+ \(/,
    );
    for (const h of driver.hierarchies) expect(fs.existsSync(path.join(h.mountPoint, PARENT))).toBe(false);
  });

  it('refuses to reuse an existing cgroup without touching it', async () => {
    tracked(driver.create('twice', {}));
    expect(() => driver.create('twice', {})).toThrow(/already exists/);
    for (const dir of dirsOf('twice')) expect(fs.existsSync(dir)).toBe(true);
  });
});

// ---- v2, for real on whatever cgroup2 mount this host has ----

describe.runIf(hasV2)('cgroup v2 driver (real kernel)', () => {
  const driver = detectCgroupDriver({ version: 2, mountPoint: V2_MOUNT, parent: PARENT });
  const dirOf = (name: string): string => path.join(V2_MOUNT, PARENT, name);

  it('creates and destroys a cgroup with a CLONE_INTO_CGROUP-ready directory fd', async () => {
    const cg = tracked(driver.create('plain', {}));
    expect(cg.procsFds).toEqual([]);
    const fd = cg.cloneIntoFd;
    expect(fd).toBeTypeOf('number');
    expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe(dirOf('plain'));
    expect(fs.fstatSync(fd ?? -1).isDirectory()).toBe(true);
    expect(driver.list()).toEqual(['plain']);
    expect(driver.open('plain')?.cloneIntoFd).toBeUndefined();

    await cg.destroy();
    expect(cg.cloneIntoFd).toBeUndefined();
    expect(fs.existsSync(dirOf('plain'))).toBe(false);
    expect(fs.existsSync(path.join(V2_MOUNT, PARENT))).toBe(false);
    await cg.destroy();
  });

  it('lists, freezes, thaws and kills member processes (cgroup.kill)', { timeout: 20_000 }, async () => {
    const cg = tracked(driver.create('members', {}));
    const spinner = spawnTracked('sh', SPIN);
    const sleeper = spawnTracked('sleep', ['30']);
    for (const { pid } of [spinner, sleeper]) {
      fs.writeFileSync(path.join(dirOf('members'), 'cgroup.procs'), String(pid));
    }
    expect(read(`/proc/${sleeper.pid}/cgroup`).split('\n')).toContain(`0::/${PARENT}/members`);
    expect(cg.pids()).toEqual([spinner.pid, sleeper.pid].sort((a, b) => a - b));

    await expectFreezeStopsCpu(cg, spinner);
    await cg.setFrozen(true);
    expect(read(path.join(dirOf('members'), 'cgroup.events'))).toMatch(/^frozen 1$/m);
    cg.killAll('SIGKILL');
    expect((await spinner.exited).signal).toBe('SIGKILL');
    expect((await sleeper.exited).signal).toBe('SIGKILL');
    await eventually(() => cg.pids().length === 0, 'the cgroup to empty');
  });

  it.runIf(!v2Controllers.includes('memory'))('says which controller is missing and leaves nothing behind', () => {
    expect(() => tracked(driver.create('nomem', { memory: { limit: 64 * MiB } }))).toThrow(
      /resources\.memory\.limit needs the memory controller, which is not available on this host/,
    );
    expect(() => tracked(driver.create('nopids', { pids: { limit: 5 } }))).toThrow(/pids controller/);
    expect(fs.existsSync(path.join(V2_MOUNT, PARENT))).toBe(false);
  });
});

// ---- v2 controller files on a fake hierarchy: only the values written are checked here ----

describe('cgroup v2 driver values (fake hierarchy in a temp dir)', () => {
  function fakeMount(controllers: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cgroup-v2-fake-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'cgroup.controllers'), controllers);
    fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), controllers);
    return dir;
  }

  it('writes memory, swap, cpu, cpuset and pids values', () => {
    const mount = fakeMount('cpu cpuset memory pids io');
    const driver = new CgroupV2Driver({ mountPoint: mount, parent: PARENT });
    const cg = driver.create('c1', {
      memory: { limit: 64 * MiB, swap: 96 * MiB, reservation: 16 * MiB },
      cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      pids: { limit: 100 },
    });
    cg.releaseSpawnFds();
    const value = (file: string): string => read(path.join(mount, PARENT, 'c1', file));
    expect(value('memory.max')).toBe(String(64 * MiB));
    expect(value('memory.swap.max')).toBe(String(32 * MiB));
    expect(value('memory.low')).toBe(String(16 * MiB));
    expect(value('cpu.weight')).toBe('39');
    expect(value('cpu.max')).toBe('50000 100000');
    expect(value('cpuset.cpus')).toBe('0-1');
    expect(value('cpuset.mems')).toBe('0');
    expect(value('pids.max')).toBe('100');
    // Delegation to the container level was written (a plain file keeps only the last "+controller").
    expect(fs.existsSync(path.join(mount, PARENT, 'cgroup.subtree_control'))).toBe(true);
  });

  it('writes "max" for unlimited values and skips what was not requested', () => {
    const mount = fakeMount('cpu cpuset memory pids io');
    const driver = new CgroupV2Driver({ mountPoint: mount, parent: PARENT });
    const unlimited = { memory: { limit: -1, swap: -1 }, cpu: { period: 200000 }, pids: { limit: 0 } };
    driver.create('c2', unlimited).releaseSpawnFds();
    const value = (file: string): string => read(path.join(mount, PARENT, 'c2', file));
    expect(value('memory.max')).toBe('max');
    expect(value('memory.swap.max')).toBe('max');
    expect(value('cpu.max')).toBe('max 200000');
    expect(value('pids.max')).toBe('max');
    for (const skipped of ['memory.low', 'cpu.weight', 'cpuset.cpus']) {
      expect(fs.existsSync(path.join(mount, PARENT, 'c2', skipped)), skipped).toBe(false);
    }
  });

  it('refuses a request whose controller the host does not offer', () => {
    const mount = fakeMount('cpu');
    const driver = new CgroupV2Driver({ mountPoint: mount, parent: PARENT });
    expect(() => driver.create('c3', { memory: { limit: 64 * MiB } })).toThrow(/memory controller.*offers: cpu/);
    expect(() => driver.create('c3', { cpu: { shares: 512 } }).releaseSpawnFds()).not.toThrow();
  });
});
