// User namespaces: root in the container is an unprivileged id on the host; the rootfs (a directory or an image)
// keeps its owners inside through idmapped mounts (or shifted copies), while what the container writes belongs
// to its mapped ids on the host; 'auto' hands out disjoint ranges across processes; the default mounts work.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync,
  rmSync, statSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, InvalidOptionsError } from '../lib/index.js';
import { cleanupDeadOwners, openEngine } from '../lib/container/engine.js';
import { firstFree, parseSubordinateIds, poolFrom, reserveUserns, DEFAULT_POOL, UsernsExhaustedError } from '../lib/container/userns/pool.js';
import { StateRoot } from '../lib/container/state.js';
import { mountCount, tempRoot } from './helpers/env.js';
import { pushBusybox, startRegistry, type Registry } from './helpers/registry.js';

const { root, rootfs, cleanup } = tempRoot('userns');
// Bind sources must be reachable by the container's root, an unprivileged uid on the host: a world-searchable dir.
const shared = mkdtempSync(join(tmpdir(), 'berth-test-userns-shared-'));
chmodSync(shared, 0o755);
const dist = new URL('../dist/lib/index.js', import.meta.url).pathname;

const HOST = 300_000;
const MAPS = {
  uidMap: [{ containerID: 0, hostID: HOST, size: 65536 }],
  gidMap: [{ containerID: 0, hostID: HOST, size: 65536 }],
};

let registry: Registry | undefined;
let mountsBefore = 0;

beforeAll(async () => {
  // Warm up (addon, engine) so that lazily opened handles are not counted as leaks.
  await Container.run({ root, rootfs, cmd: ['true'] });
  mountsBefore = mountCount();
});

afterAll(async () => {
  await registry?.stop();
  await cleanup();
  rmSync(shared, { recursive: true, force: true });
});

const sh = (script: string, extra: Record<string, unknown> = {}) =>
  Container.run({ root, rootfs, cmd: ['sh', '-c', script], ...extra });

/** Collects a created container's stdout until it ends. */
function output(c: Container): Promise<string> {
  let out = '';
  c.stdout!.on('data', (d) => (out += d));
  return new Promise((r) => c.stdout!.once('end', () => r(out)));
}

/** A host range `[start, end)` from a /proc/<pid>/uid_map text (one line). */
function kernelRange(text: string): [number, number] {
  const [, host, size] = text.trim().split(/\s+/).map(Number);
  return [host!, host! + size!];
}

function disjoint(ranges: [number, number][]): boolean {
  const s = [...ranges].sort((a, b) => a[0] - b[0]);
  return s.every((r, i) => i === 0 || s[i - 1]![1] <= r[0]);
}

describe('user namespaces: identity', () => {
  it('is root inside, an unprivileged uid on the host, with the map the kernel shows', async () => {
    await using c = await Container.create({ root, rootfs, userns: MAPS, cmd: ['sh', '-c', 'id; cat /proc/self/uid_map /proc/self/gid_map; grep -E "^Cap(Eff|Bnd|Inh|Amb)" /proc/self/status | sort; sleep 0.2'] });
    const out = output(c);
    // Host side: the init is already waiting in the namespace, with host uid/gid HOST.
    const status = readFileSync(`/proc/${c.pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe(String(HOST));
    expect(/^Gid:\s+(\d+)/m.exec(status)![1]).toBe(String(HOST));
    // None of the host's supplementary groups is kept: whatever is listed is a mapped group.
    const groups = /^Groups:[ \t]*(.*)$/m.exec(status)![1]!.trim().split(/\s+/).filter(Boolean).map(Number);
    expect(groups.filter((g) => g < HOST || g >= HOST + 65536)).toEqual([]);
    expect(readFileSync(`/proc/${c.pid}/uid_map`, 'utf8').trim().split(/\s+/)).toEqual(['0', String(HOST), '65536']);
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    const lines = (await out).trim().split('\n');
    expect(lines[0]).toBe('uid=0(root) gid=0(root)');
    expect(lines[1]!.trim().split(/\s+/)).toEqual(['0', String(HOST), '65536']);
    expect(lines[2]!.trim().split(/\s+/)).toEqual(['0', String(HOST), '65536']);
    // Docker's default capabilities, now relative to the namespace; nothing of what the init kept to get there.
    expect(lines.slice(3)).toEqual(['CapAmb:\t0000000000000000', 'CapBnd:\t00000000a80425fb', 'CapEff:\t00000000a80425fb', 'CapInh:\t0000000000000000']);
    expect((await c.inspect()).userns).toEqual({ ...MAPS, auto: false });
    expect((await c.inspect()).spec.linux?.namespaces?.some((n) => n.type === 'user')).toBe(true);
  });

  it('runs a non-root user as its mapped id', async () => {
    await using c = await Container.create({ root, rootfs, userns: MAPS, user: '1000:1000', cmd: ['sh', '-c', 'id -u; id -g; touch /tmp/mine 2>/dev/null || echo denied'] });
    const out = output(c);
    // Created: the init already runs as the user (host uid HOST + 1000), waiting just before execve.
    expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${c.pid}/status`, 'utf8'))![1]).toBe(String(HOST + 1000));
    await c.start();
    await c.wait();
    expect((await out).trim().split('\n').slice(0, 2)).toEqual(['1000', '1000']);
  });
});

describe('user namespaces: file ownership', () => {
  it('shows the rootfs directory with its owners; writes land with mapped ids in the upper dir, never in the directory', async () => {
    mkdirSync(join(rootfs, 'srv'), { recursive: true });
    writeFileSync(join(rootfs, 'srv', 'owned'), 'x');
    chownSync(join(rootfs, 'srv', 'owned'), 1000, 1001);
    await using c = await Container.create({
      root, rootfs, userns: MAPS,
      cmd: ['sh', '-c', 'stat -c "%u:%g %n" / /bin/busybox /etc/passwd /srv/owned; touch /created; mkdir /d; echo hi > /d/f; chown 1000:1000 /d/f; echo more >> /srv/owned; echo ok'],
    });
    const out = output(c);
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    expect((await out).trim().split('\n')).toEqual(['0:0 /', '0:0 /bin/busybox', '0:0 /etc/passwd', '1000:1001 /srv/owned', 'ok']);
    const upper = join(root, 'containers', c.id, 'upper');
    const owner = (p: string) => { const s = lstatSync(join(upper, p)); return `${s.uid}:${s.gid}`; };
    expect(owner('created')).toBe(`${HOST}:${HOST}`);
    expect(owner('d')).toBe(`${HOST}:${HOST}`);
    expect(owner('d/f')).toBe(`${HOST + 1000}:${HOST + 1000}`);
    expect(owner('srv/owned')).toBe(`${HOST + 1000}:${HOST + 1001}`); // copied up with its (mapped) owner
    expect(owner('.')).toBe(`${HOST}:${HOST}`);
    // The rootfs directory itself is untouched.
    expect(existsSync(join(rootfs, 'created'))).toBe(false);
    expect(readFileSync(join(rootfs, 'srv', 'owned'), 'utf8')).toBe('x');
    expect(statSync(join(rootfs, 'srv', 'owned')).uid).toBe(1000);
  });

  it('runs a raw OCI spec with a user namespace on its rootfs as is (runc semantics: the rootfs is pre-chowned)', async () => {
    const chowned = join(shared, 'rootfs-chowned');
    cpSync(rootfs, chowned, { recursive: true, verbatimSymlinks: true });
    execFileSync('chown', ['-R', '-h', `${HOST}:${HOST}`, chowned]);
    const spec = {
      ociVersion: '1.2.0',
      process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'id -u; stat -c %u /bin/busybox; touch /made-here; cat /proc/self/uid_map'], cwd: '/' },
      root: { path: chowned },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'user' }],
        uidMappings: MAPS.uidMap,
        gidMappings: MAPS.gidMap,
      },
    };
    try {
      await using c = await Container.createFromSpec(spec, { root });
      const out = output(c);
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      const lines = (await out).trim().split('\n');
      expect(lines.slice(0, 2)).toEqual(['0', '0']);
      expect(lines[2]!.trim().split(/\s+/)).toEqual(['0', String(HOST), '65536']);
      expect(statSync(join(chowned, 'made-here')).uid).toBe(HOST);
    } finally {
      rmSync(chowned, { recursive: true, force: true });
    }
  });
});

describe('user namespaces: default mounts, devices, cgroups', () => {
  it('mounts proc, sysfs, devpts, mqueue, /dev/shm and cgroups; binds the host\'s device nodes; masks and read-only paths hold', async () => {
    const script = [
      'set -e',
      'ls /proc/self/ns >/dev/null && echo proc',
      'ls /sys/class/net',
      'echo hi > /dev/null && echo null',
      'head -c 8 /dev/zero | wc -c',
      'head -c 8 /dev/urandom | wc -c',
      'test -c /dev/pts/ptmx && echo ptmx',
      'stat -c "%U:%G %n" /dev /dev/mqueue',
      'echo shm > /dev/shm/f && cat /dev/shm/f',
      'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max',
      // Masked: /proc/keys by /dev/null (empty, though this namespace has keys), /sys/firmware by an empty tmpfs.
      'wc -c < /proc/keys; ls /sys/firmware | wc -l',
      'awk \'$5 == "/proc/keys" || $5 == "/sys/firmware" { n++ } END { print "masked " n }\' /proc/self/mountinfo',
      'awk \'$2 == "/proc/sys" { split($4, o, ","); print "proc/sys " o[1] }\' /proc/mounts',
      'awk \'$2 == "/sys" { split($4, o, ","); print "sys " o[1] }\' /proc/mounts',
      'hostname',
    ].join('\n');
    await using c = await Container.create({ root, rootfs, userns: 'auto', hostname: 'inside', resources: { pidsLimit: 50 }, cmd: ['sh', '-c', script] });
    const out = output(c);
    // Joined its cgroup before anything ran.
    expect(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8')).toContain(c.id);
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    expect((await out).trim().split('\n')).toEqual([
      'proc', 'lo', 'null', '8', '8', 'ptmx', 'root:root /dev', 'root:root /dev/mqueue', 'shm', '50', '0', '0', 'masked 2',
      'proc/sys ro', 'sys ro', 'inside',
    ]);
  });

  it.runIf(existsSync('/sys/fs/cgroup/unified/cgroup.procs'))('joins a cgroup v2 through clone3 and mounts cgroup2 in its own cgroup namespace', async () => {
    const v2 = tempRoot('userns-v2');
    process.env.BERTH_CGROUP_VERSION = '2';
    process.env.BERTH_CGROUP_MOUNT = '/sys/fs/cgroup/unified';
    try {
      await using c = await Container.create({ root: v2.root, rootfs: v2.rootfs, userns: 'auto', cmd: ['sh', '-c', 'cat /proc/self/cgroup | grep "^0::"; test -f /sys/fs/cgroup/cgroup.procs && echo cgroup2'] });
      const out = output(c);
      expect(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8')).toMatch(new RegExp(`^0::/.*${c.id}$`, 'm'));
      await c.start();
      expect((await c.wait()).exitCode).toBe(0);
      expect((await out).trim().split('\n')).toEqual(['0::/', 'cgroup2']);
    } finally {
      delete process.env.BERTH_CGROUP_VERSION;
      delete process.env.BERTH_CGROUP_MOUNT;
      await v2.cleanup();
    }
  });

  it('cannot do privileged things on the host, even with every capability', async () => {
    writeFileSync(join(shared, 'hostfile'), 'host\n', { mode: 0o644 });
    writeFileSync(join(shared, 'secret'), 'secret\n', { mode: 0o600 });
    mkdirSync(join(shared, 'mine'));
    chownSync(join(shared, 'mine'), HOST, HOST);
    const probe = (name: string, cmd: string) => `if { ${cmd}; } 2>/dev/null; then echo "${name} ALLOWED"; else echo "${name} denied"; fi`;
    const r = await sh([
      'cat /data/hostfile',
      probe('append', 'echo x >> /data/hostfile'),
      probe('read-secret', 'cat /data/secret'),
      probe('chown', 'chown 0:0 /data/hostfile'),
      probe('chmod', 'chmod 666 /data/hostfile'),
      probe('mknod-block', 'mknod /tmp/blk b 8 0'),
      // Harmless even if allowed: sets the clock to the time just read. (busybox date exits 0 when it cannot
      // set the time; only its message tells.)
      'if date -s "@$(date +%s)" 2>&1 >/dev/null | grep -q "can\'t set"; then echo "settime denied"; else echo "settime ALLOWED"; fi',
      probe('own-dir', 'echo ok > /data/mine/f'),
      'stat -c "%U %n" /data/hostfile',
    ].join('\n'), { userns: MAPS, capAdd: ['ALL'], mounts: [{ type: 'bind', source: shared, target: '/data' }] });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual([
      'host', 'append denied', 'read-secret denied', 'chown denied', 'chmod denied', 'mknod-block denied',
      'settime denied', 'own-dir ALLOWED', 'nobody /data/hostfile',
    ]);
    expect(readFileSync(join(shared, 'hostfile'), 'utf8')).toBe('host\n');
    expect(statSync(join(shared, 'mine', 'f')).uid).toBe(HOST);
  });
});

describe("user namespaces: 'auto'", () => {
  it('gives concurrent containers disjoint ranges and releases them on remove', async () => {
    const a = await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] });
    const b = await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] });
    const ra = kernelRange(readFileSync(`/proc/${a.pid}/uid_map`, 'utf8'));
    const rb = kernelRange(readFileSync(`/proc/${b.pid}/uid_map`, 'utf8'));
    const ga = kernelRange(readFileSync(`/proc/${a.pid}/gid_map`, 'utf8'));
    expect(ra[1] - ra[0]).toBe(65536);
    expect(disjoint([ra, rb])).toBe(true);
    expect(ga).toEqual(ra);
    expect((await a.inspect()).userns).toEqual({
      uidMap: [{ containerID: 0, hostID: ra[0], size: 65536 }], gidMap: [{ containerID: 0, hostID: ga[0], size: 65536 }], auto: true,
    });
    // An explicit map elsewhere is avoided too.
    const explicitStart = Math.max(ra[1], rb[1]);
    const e = await Container.create({ root, rootfs, cmd: ['true'], userns: {
      uidMap: [{ containerID: 0, hostID: explicitStart, size: 65536 }], gidMap: [{ containerID: 0, hostID: explicitStart, size: 65536 }],
    } });
    const c3 = await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] });
    const r3 = kernelRange(readFileSync(`/proc/${c3.pid}/uid_map`, 'utf8'));
    expect(disjoint([ra, rb, [explicitStart, explicitStart + 65536], r3])).toBe(true);
    const lowest = Math.min(ra[0], rb[0]);
    for (const c of [a, b, c3, e]) await c.remove({ force: true });
    // All released: the next one gets the lowest range again.
    await using d = await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] });
    expect(kernelRange(readFileSync(`/proc/${d.pid}/uid_map`, 'utf8'))[0]).toBe(lowest);
  });

  it('gives containers of several processes sharing a state root disjoint ranges', async () => {
    const body = `
      const cs = [];
      for (let i = 0; i < 4; i++) cs.push(await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] }));
      const ranges = cs.map((c) => readFileSync('/proc/' + c.pid + '/uid_map', 'utf8').trim());
      console.log(JSON.stringify(ranges));
      await new Promise((r) => { process.stdin.resume(); process.stdin.on('end', r); });
      for (const c of cs) await c.remove({ force: true });`;
    const procs = [0, 1, 2].map(() => node(body));
    const lines = await Promise.all(procs.map((p) => p.firstLine));
    const ranges = lines.flatMap((l) => (JSON.parse(l) as string[]).map(kernelRange));
    expect(ranges.length).toBe(12);
    expect(disjoint(ranges)).toBe(true);
    for (const p of procs) p.child.stdin!.end();
    for (const p of procs) {
      const r = await p.done;
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
  });

  it('reclaims the range of a container whose owner died', async () => {
    const { firstLine, done } = node(`
      const c = await Container.create({ root, rootfs, userns: 'auto', cmd: ['sleep', '100'] });
      await c.start();
      console.log(JSON.stringify({ id: c.id, map: readFileSync('/proc/' + c.pid + '/uid_map', 'utf8').trim() }));
      process.kill(process.pid, 'SIGKILL');`);
    const { id, map } = JSON.parse(await firstLine) as { id: string; map: string };
    await done;
    const dead = kernelRange(map);
    expect(existsSync(join(root, 'containers', id, 'userns.json'))).toBe(true);
    // While its record stands, nobody else gets the range.
    await using other = await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] });
    expect(disjoint([dead, kernelRange(readFileSync(`/proc/${other.pid}/uid_map`, 'utf8'))])).toBe(true);
    await other.remove();
    await cleanupDeadOwners(await openEngine(root));
    expect(existsSync(join(root, 'containers', id))).toBe(false);
    await using next = await Container.create({ root, rootfs, userns: 'auto', cmd: ['true'] });
    expect(kernelRange(readFileSync(`/proc/${next.pid}/uid_map`, 'utf8'))).toEqual(dead);
  });

  it('allocates from the berth user\'s subordinate ids and says so when they run out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-test-userns-pool-'));
    try {
      writeFileSync(join(dir, 'subuid'), 'alice:100000:65536\nberth:500000:131072\n');
      writeFileSync(join(dir, 'subgid'), 'berth:700000:65536\n');
      const state = new StateRoot(join(dir, 'state'));
      const sources = { subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
      const ids = ['a', 'b'].map((c) => c.repeat(64));
      for (const id of ids) state.createContainerDir(id, { pid: process.pid, startTime: 0 });
      const first = await reserveUserns(state, ids[0]!, 'auto', sources);
      expect(first.uidMap).toEqual([{ containerID: 0, hostID: 500000, size: 65536 }]);
      expect(first.gidMap).toEqual([{ containerID: 0, hostID: 700000, size: 65536 }]);
      // The gid pool holds one range only.
      const err = await reserveUserns(state, ids[1]!, 'auto', sources).catch((e) => e);
      expect(err).toBeInstanceOf(UsernsExhaustedError);
      expect(err.code).toBe('ERR_USERNS_EXHAUSTED');
      expect(err.message).toMatch(/no free gid range of 65536 ids .*pool: 700000\.\.765535/);
      state.removeContainerDir(ids[0]!);
      expect((await reserveUserns(state, ids[1]!, 'auto', sources)).gidMap[0]!.hostID).toBe(700000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes its pool from /etc/subuid-style files and keeps away from other users\' ranges', () => {
    const text = 'alice:100000:65536\nberth:500000:131072\n# comment\nbob:165536:65536\n';
    expect(parseSubordinateIds(text)).toEqual({
      own: [{ start: 500000, size: 131072 }],
      others: [{ start: 100000, size: 65536 }, { start: 165536, size: 65536 }],
    });
    expect(poolFrom(text)).toEqual({ pool: [{ start: 500000, size: 131072 }], avoid: [] });
    const fallback = poolFrom('alice:100000:65536\n');
    expect(fallback.pool).toEqual([DEFAULT_POOL]);
    expect(firstFree(fallback.pool, fallback.avoid.map((r) => [r.start, r.start + r.size]))).toBe(165536);
    expect(firstFree([{ start: 500000, size: 131072 }], [[500000, 565536]])).toBe(565536);
    expect(firstFree([{ start: 500000, size: 131072 }], [[500000, 565536], [600000, 600001]])).toBeUndefined();
  });
});

describe('user namespaces: bad maps and options', () => {
  const map = (m: unknown[]) => ({ uidMap: m, gidMap: [{ containerID: 0, hostID: HOST, size: 65536 }] });
  const cases: [string, unknown, RegExp][] = [
    ['overlapping container ranges', map([{ containerID: 0, hostID: HOST, size: 100 }, { containerID: 50, hostID: HOST + 1000, size: 10 }]), /userns\.uidMap\.1: container ids 50\.\.59 overlap range 0 \(0\.\.99\)/],
    ['overlapping host ranges', map([{ containerID: 0, hostID: HOST, size: 100 }, { containerID: 1000, hostID: HOST + 99, size: 10 }]), /host ids 300099\.\.300108 overlap range 0/],
    ['a zero size', map([{ containerID: 0, hostID: HOST, size: 0 }]), /userns\.uidMap\.0\.size: must be at least 1/],
    ['host root mapped', map([{ containerID: 0, hostID: 0, size: 65536 }]), /must not map host id 0/],
    ['no container root', map([{ containerID: 1, hostID: HOST, size: 10 }]), /must map container id 0/],
    ['ids beyond 32 bits', map([{ containerID: 0, hostID: 4294967290, size: 100 }]), /hostID \+ size runs past the last id 4294967294/],
    ['a negative id', map([{ containerID: -1, hostID: HOST, size: 1 }]), /containerID: must not be negative/],
    ['an empty map', map([]), /userns\.uidMap: must have at least one range/],
    ['too many ranges', map(Array.from({ length: 341 }, (_, i) => ({ containerID: i, hostID: HOST + i, size: 1 }))), /at most 340 ranges/],
    ['an unknown mode', 'host', /userns/],
    ['host namespaces', { userns: 'auto', namespaces: { network: 'host' } }, /namespaces: with userns every namespace must be private/],
    ['the host network', { userns: 'auto', network: 'host' }, /userns cannot be combined with network "host" or "container:<id>"/],
    ['another container\'s network', { userns: 'auto', network: 'container:abc' }, /userns cannot be combined with network "host" or "container:<id>"/],
    ['an unmapped user', { userns: { uidMap: [{ containerID: 0, hostID: HOST, size: 1000 }], gidMap: MAPS.gidMap }, user: '5000' }, /uid 5000 is not mapped/],
  ];
  for (const [what, value, message] of cases) {
    it(`refuses ${what}`, async () => {
      const options = typeof value === 'object' && value !== null && 'userns' in value ? value : { userns: value };
      const err = await Container.run({ root, rootfs, cmd: ['true'], ...(options as object) }).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.code).toBe('ERR_INVALID_OPTIONS');
      expect(err.message).toMatch(message);
    });
  }

  it('refuses inconsistent OCI specs', async () => {
    const base = {
      ociVersion: '1.2.0',
      process: { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/' },
      root: { path: rootfs },
    };
    const noNs = await Container.createFromSpec({ ...base, linux: { namespaces: [{ type: 'mount' }], uidMappings: MAPS.uidMap, gidMappings: MAPS.gidMap } }, { root }).catch((e) => e);
    expect(noNs.message).toMatch(/id mappings need a user namespace/);
    const noMaps = await Container.createFromSpec({ ...base, linux: { namespaces: [{ type: 'mount' }, { type: 'user' }] } }, { root }).catch((e) => e);
    expect(noMaps.message).toMatch(/a new user namespace needs uidMappings/);
    const sysfs = await Container.createFromSpec({
      ...base,
      mounts: [{ destination: '/sys', type: 'sysfs', source: 'sysfs' }],
      linux: { namespaces: [{ type: 'mount' }, { type: 'user' }], uidMappings: MAPS.uidMap, gidMappings: MAPS.gidMap },
    }, { root }).catch((e) => e);
    expect(sysfs.message).toMatch(/mounting sysfs on \/sys in a user namespace needs a new network namespace/);
    const badMap = await Container.createFromSpec({ ...base, linux: { namespaces: [{ type: 'user' }], uidMappings: [{ containerID: 0, hostID: 0, size: 1 }], gidMappings: MAPS.gidMap } }, { root }).catch((e) => e);
    expect(badMap.message).toMatch(/linux\.uidMappings\.0: must not map host id 0/);
  });
});

describe('user namespaces: containers from images', () => {
  let image: string;
  let snapshotsRoot: string;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushBusybox(registry, 'library/busybox');
    image = `${registry.host}/team/owners`;
    await pushLayer(registry, 'team/owners', (stage) => {
      mkdirSync(join(stage, 'etc'));
      writeFileSync(join(stage, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n');
      writeFileSync(join(stage, 'etc', 'group'), 'root:x:0:\napp:x:4321:\n');
      mkdirSync(join(stage, 'home', 'app'), { recursive: true });
      writeFileSync(join(stage, 'home', 'app', 'notes'), 'mine\n');
      chownSync(join(stage, 'home', 'app'), 1234, 4321);
      chownSync(join(stage, 'home', 'app', 'notes'), 1234, 4321);
    });
    snapshotsRoot = join(root, 'snapshots');
  }, 120_000);

  const script = 'id; stat -c "%u:%g %n" /etc/passwd /home/app/notes; echo added >> /home/app/notes; touch /home/app/new; cat /home/app/notes';

  it('sees the image\'s owners through idmapped layers; writes land with mapped ids; the snapshots never change', async () => {
    await using c = await Container.create({ root, image, userns: MAPS, user: 'app', cmd: ['sh', '-c', script] });
    const out = output(c);
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    expect((await out).trim().split('\n')).toEqual([
      'uid=1234(app) gid=4321(app)', '0:0 /etc/passwd', '1234:4321 /home/app/notes', 'mine', 'added',
    ]);
    const upper = join(root, 'containers', c.id, 'upper');
    expect(statSync(join(upper, 'home', 'app', 'new')).uid).toBe(HOST + 1234);
    expect(statSync(join(upper, 'home', 'app', 'notes')).gid).toBe(HOST + 4321);
    // Idmapped, not copied: no shifted layer copies in the container's directory.
    expect(readdirSync(join(root, 'containers', c.id)).filter((d) => d.startsWith('lower-'))).toEqual([]);
    for (const snap of readdirSync(snapshotsRoot).filter((d) => !d.startsWith('.'))) {
      const notes = join(snapshotsRoot, snap, 'home', 'app', 'notes');
      if (existsSync(notes)) {
        expect(statSync(notes).uid).toBe(1234);
        expect(readFileSync(notes, 'utf8')).toBe('mine\n');
      }
    }
  });

  it('falls back to shifted copies of the layers when idmapped mounts are off', async () => {
    process.env.BERTH_USERNS_IDMAP = '0';
    let c: Container;
    try {
      c = await Container.create({ root, image, userns: 'auto', user: 'app', cmd: ['sh', '-c', script] });
    } finally {
      delete process.env.BERTH_USERNS_IDMAP;
    }
    await using _ = c;
    const out = output(c);
    const host = (await c.inspect()).userns!.uidMap[0]!.hostID;
    const dir = join(root, 'containers', c.id);
    const copies = readdirSync(dir).filter((d) => d.startsWith('lower-')).sort();
    expect(copies.length).toBe(2); // busybox + the owners layer
    const notes = copies.map((d) => join(dir, d, 'home', 'app', 'notes')).find((p) => existsSync(p))!;
    expect(statSync(notes).uid).toBe(host + 1234);
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    expect((await out).trim().split('\n')).toEqual([
      'uid=1234(app) gid=4321(app)', '0:0 /etc/passwd', '1234:4321 /home/app/notes', 'mine', 'added',
    ]);
    // The shared snapshots stay as they were.
    for (const snap of readdirSync(snapshotsRoot).filter((d) => !d.startsWith('.'))) {
      const p = join(snapshotsRoot, snap, 'home', 'app', 'notes');
      if (existsSync(p)) expect(statSync(p).uid).toBe(1234);
    }
  });
});

describe('user namespaces: cleanup', () => {
  it('leaves no mounts, fds, ranges or state behind', async () => {
    await sh('true', { userns: 'auto' });
    // Sockets excluded: the registry client's keep-alive connections of the tests above close on their own time.
    const fds = nonSocketFds();
    for (let i = 0; i < 5; i++) {
      const r = await sh('touch /x; id -u', { userns: 'auto' });
      expect(r.stdout.trim()).toBe('0');
    }
    expect(mountCount()).toBe(mountsBefore);
    // Node closes a finished stream's pipe on a later turn of the event loop: give it a moment.
    for (let i = 0; i < 50 && nonSocketFds() !== fds; i++) await new Promise((r) => setTimeout(r, 10));
    expect(nonSocketFds()).toBe(fds);
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toMatch(/berth-test-userns/);
  });
});

/** Open fds of this process that are not sockets. */
function nonSocketFds(): number {
  return readdirSync('/proc/self/fd').filter((f) => {
    try {
      return !readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:');
    } catch {
      return false; // the fd of the directory listing itself
    }
  }).length;
}

/** Runs a Node script that imports the built library; `firstLine` resolves with its first line of output. */
function node(body: string) {
  const file = join(shared, `s${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, `import { Container } from ${JSON.stringify(dist)};\nimport { readFileSync } from 'node:fs';\nconst root = ${JSON.stringify(root)};\nconst rootfs = ${JSON.stringify(rootfs)};\n${body}`);
  const child = spawn(process.execPath, [file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let resolveLine: (l: string) => void;
  const firstLine = new Promise<string>((r) => (resolveLine = r));
  child.stdout!.on('data', (d) => {
    stdout += d;
    const nl = stdout.indexOf('\n');
    if (nl >= 0) resolveLine(stdout.slice(0, nl));
  });
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('exit', (code) => {
      resolveLine(stdout);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, firstLine, done };
}

/** Pushes `name` as library/busybox plus one layer built in a staging directory (owners kept, numeric). */
async function pushLayer(reg: Registry, name: string, build: (stage: string) => void): Promise<void> {
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const putBlob = async (bytes: Buffer) => {
    const digest = sha(bytes);
    const start = await fetch(`${reg.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    const location = new URL(start.headers.get('location')!, reg.url);
    location.searchParams.set('digest', digest);
    const res = await fetch(location, { method: 'PUT', body: bytes });
    if (res.status !== 201) throw new Error(`blob upload ${res.status}`);
    return digest;
  };
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  const base = (await (await fetch(`${reg.url}/v2/library/busybox/manifests/latest`, { headers: { accept: mt } })).json()) as {
    config: { digest: string; size: number; mediaType: string };
    layers: { digest: string; size: number; mediaType: string }[];
  };
  const config = (await (await fetch(`${reg.url}/v2/library/busybox/blobs/${base.config.digest}`)).json()) as { rootfs: { diff_ids: string[] } };
  for (const l of base.layers) await fetch(`${reg.url}/v2/${name}/blobs/uploads/?mount=${l.digest}&from=library/busybox`, { method: 'POST' });
  const stage = mkdtempSync(join(shared, 'stage-'));
  build(stage);
  const tarFile = join(shared, `layer-${Math.random().toString(36).slice(2)}.tar`);
  execFileSync('tar', ['--format=pax', '--numeric-owner', '-C', stage, '-cf', tarFile, '.']);
  const tar = readFileSync(tarFile);
  const blob = gzipSync(tar);
  const layers = [...base.layers, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await putBlob(blob), size: blob.length }];
  config.rootfs.diff_ids.push(sha(tar));
  const cfg = Buffer.from(JSON.stringify(config));
  const manifest = { schemaVersion: 2, mediaType: mt, config: { ...base.config, digest: await putBlob(cfg), size: cfg.length }, layers };
  const res = await fetch(`${reg.url}/v2/${name}/manifests/latest`, { method: 'PUT', body: JSON.stringify(manifest), headers: { 'content-type': mt } });
  if (res.status !== 201) throw new Error(`manifest put ${res.status}`);
}
