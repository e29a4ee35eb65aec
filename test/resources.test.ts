// cgroup limits seen from inside a container: memory (OOM kill), pids, cpu; stats; cgroup v2 via CLONE_INTO_CGROUP.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { CgroupError, Container } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('resources');
const v2 = tempRoot('resources-v2');
afterAll(async () => {
  await cleanup();
  await v2.cleanup();
});
const base = { root, rootfs: BUSYBOX };
const hybrid = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');

describe('resource limits', () => {
  it('kills a container that exceeds its memory limit and reports oomKilled', async () => {
    const r = await Container.run({
      ...base,
      // Grow a shell variable far past the limit; swap is capped at the limit too (memory + swap = memory).
      cmd: ['sh', '-c', 'x=a; while :; do x="$x$x"; done'],
      resources: { memory: '16m', memorySwap: '16m' },
    });
    expect(r.oomKilled).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    expect(r.exitCode).toBe(137);
  });

  it('does not report oomKilled for a container that stayed within its limit', async () => {
    const r = await Container.run({ ...base, cmd: ['true'], resources: { memory: '64m' } });
    expect(r.oomKilled).toBe(false);
  });

  it('enforces the pids limit', async () => {
    const script = 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait';
    const limited = await Container.run({ ...base, cmd: ['sh', '-c', script], resources: { pidsLimit: 5 } });
    expect(limited.exitCode).not.toBe(0);
    expect(limited.stderr).toMatch(/can't fork: Resource temporarily unavailable/);
    const free = await Container.run({ ...base, cmd: ['sh', '-c', script] });
    expect(free.exitCode).toBe(0);
    const seen = await Container.run({
      ...base,
      cmd: ['sh', '-c', 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'],
      resources: { pidsLimit: 5 },
    });
    expect(seen.stdout.trim()).toBe('5');
  });

  it('converts cpus to a CFS quota and applies cpuset and shares', async () => {
    const cpuDir = hybrid ? '/sys/fs/cgroup/cpu' : '/sys/fs/cgroup';
    await using c = await Container.create({
      ...base,
      cmd: ['sleep', '100'],
      resources: { cpus: 0.5, cpuShares: 512, cpusetCpus: '0' },
    });
    await c.start();
    if (hybrid) {
      const dir = `${cpuDir}/berth/${c.id}`;
      expect(readFileSync(`${dir}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('50000');
      expect(readFileSync(`${dir}/cpu.cfs_period_us`, 'utf8').trim()).toBe('100000');
      expect(readFileSync(`${dir}/cpu.shares`, 'utf8').trim()).toBe('512');
      expect(readFileSync(`/sys/fs/cgroup/cpuset/berth/${c.id}/cpuset.cpus`, 'utf8').trim()).toBe('0');
    }
    const inside = await Container.run({ ...base, cmd: ['sh', '-c', 'grep Cpus_allowed_list /proc/self/status'], resources: { cpusetCpus: '0' } });
    expect(inside.stdout).toMatch(/Cpus_allowed_list:\s+0$/m);
  });

  it('reports memory, cpu and pids usage', async () => {
    await using c = await Container.create({
      ...base,
      cmd: ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 100'],
      resources: { memory: '64m', pidsLimit: 20 },
    });
    await c.start();
    await new Promise((r) => setTimeout(r, 300));
    const s = c.stats();
    expect(s.memory.usage).toBeGreaterThan(0);
    expect(s.memory.limit).toBe(64 * 1024 * 1024);
    expect(s.cpu.usageNanos).toBeGreaterThan(0);
    expect(s.pids.current).toBeGreaterThanOrEqual(1);
    expect(s.pids.limit).toBe(20);
  });
});

describe.runIf(existsSync('/sys/fs/cgroup/unified/cgroup.procs'))('cgroup v2 driver on the unified hierarchy', () => {
  // This hybrid host's cgroup2 has no controllers, but clone3(CLONE_INTO_CGROUP), cgroup namespaces and
  // cgroup.kill are real: exercise them with the v2 driver forced.
  const withV2 = async <T>(f: () => Promise<T>): Promise<T> => {
    process.env.BERTH_CGROUP_VERSION = '2';
    process.env.BERTH_CGROUP_MOUNT = '/sys/fs/cgroup/unified';
    try {
      return await f();
    } finally {
      delete process.env.BERTH_CGROUP_VERSION;
      delete process.env.BERTH_CGROUP_MOUNT;
    }
  };

  it('starts the init directly in its cgroup with CLONE_INTO_CGROUP', async () => {
    await withV2(async () => {
      await using c = await Container.create({ root: v2.root, rootfs: BUSYBOX, cmd: ['sh', '-c', 'cat /proc/self/cgroup; sleep 100'] });
      const procs = readFileSync(`/sys/fs/cgroup/unified/berth/${c.id}/cgroup.procs`, 'utf8').trim().split('\n');
      expect(procs).toContain(String(c.pid));
      await c.start();
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      for (let i = 0; i < 50 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 20));
      expect(out).toContain('0::/\n');
      await c.remove({ force: true });
      expect(existsSync(`/sys/fs/cgroup/unified/berth/${c.id}`)).toBe(false);
    });
  });

  it('refuses limits whose controller this hierarchy lacks, with a clear error', async () => {
    await withV2(async () => {
      const err = await Container.create({ root: v2.root, rootfs: BUSYBOX, cmd: ['true'], resources: { memory: '32m' } }).catch((e) => e);
      expect(err).toBeInstanceOf(CgroupError);
      expect(err.message).toMatch(/memory/);
    });
  });
});
