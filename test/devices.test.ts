// Docker's default device rules: any node may be created, only the default devices may be opened.
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { deviceFilterProgram, v1DeviceLines, DOCKER_DEFAULT_DEVICE_RULES } from '../lib/container/cgroup/devices.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('devices');
const v2 = tempRoot('devices-v2');
afterAll(async () => {
  await cleanup();
  await v2.cleanup();
});

// Probes: a block device (loop0, 7:0) and a char device outside the list (kmsg, 1:11), both openable by root on
// this host, and /dev/null's numbers under another name (allowed).
const probe = [
  'rm -f /tmp/blk /tmp/kmsg /tmp/null2',
  'mknod /tmp/blk b 7 0 && echo mknod-ok',
  '(exec 3</tmp/blk) 2>&1 | grep -o "Operation not permitted" || echo blk-opened',
  'mknod /tmp/kmsg c 1 11',
  '(exec 3</tmp/kmsg) 2>&1 | grep -o "Operation not permitted" || echo kmsg-opened',
  'mknod /tmp/null2 c 1 3 && echo hi > /tmp/null2 && echo null-ok',
].join('; ');
const expected = ['mknod-ok', 'Operation not permitted', 'Operation not permitted', 'null-ok'];

describe('device rules', () => {
  it('v1 lines match Docker\'s list', () => {
    const lines = v1DeviceLines(DOCKER_DEFAULT_DEVICE_RULES);
    expect(lines[0]).toEqual({ file: 'devices.deny', line: 'a' });
    expect(lines.map((l) => l.line)).toContain('c 136:* rwm');
    expect(lines.map((l) => l.line)).toContain('b *:* m');
  });

  it('the eBPF program is well formed (8-byte instructions ending in exit)', () => {
    const prog = deviceFilterProgram(DOCKER_DEFAULT_DEVICE_RULES);
    expect(prog.length % 8).toBe(0);
    expect(prog[prog.length - 8]).toBe(0x95);
  });

  it('lets a default container create device nodes but open only the allowed ones (cgroup v1)', async () => {
    const r = await Container.run({ root, rootfs: BUSYBOX, cmd: ['sh', '-c', probe] });
    expect(r.stdout.trim().split('\n')).toEqual(expected);
  });

  it.runIf(existsSync('/sys/fs/cgroup/unified/cgroup.procs'))('enforces the same rules with an eBPF program on cgroup v2', async () => {
    process.env.BERTH_CGROUP_VERSION = '2';
    process.env.BERTH_CGROUP_MOUNT = '/sys/fs/cgroup/unified';
    try {
      const r = await Container.run({ root: v2.root, rootfs: BUSYBOX, cmd: ['sh', '-c', probe] });
      expect(r.stdout.trim().split('\n')).toEqual(expected);
    } finally {
      delete process.env.BERTH_CGROUP_VERSION;
      delete process.env.BERTH_CGROUP_MOUNT;
    }
  });
});

describe('device rules from a raw OCI spec', () => {
  const spec = (rules?: unknown[]) => ({
    ociVersion: '1.0.2',
    process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', probeRw], cwd: '/', capabilities: { bounding: ['CAP_MKNOD'], effective: ['CAP_MKNOD'], permitted: ['CAP_MKNOD'] } },
    root: { path: BUSYBOX },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['mode=755'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['mode=1777'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'mount' }],
      devices: [{ path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666 }],
      ...(rules ? { resources: { devices: rules } } : {}),
    },
  });
  // Opens /dev/null for reading, for writing, for both; and a block device.
  // (Errors go to a tmpfs file: redirecting them to /dev/null would itself open /dev/null for writing.)
  const probeRw = [
    'mknod /tmp/blk b 7 0',
    '(exec 3</tmp/blk) 2>/tmp/err && echo blk-open || echo blk-denied',
    '(exec 3</dev/null) 2>/tmp/err && echo r-ok || echo r-denied',
    '(exec 3>/dev/null) 2>/tmp/err && echo w-ok || echo w-denied',
    '(exec 3<>/dev/null) 2>/tmp/err && echo rw-ok || echo rw-denied',
  ].join('; ');
  const runSpec = async (s: unknown, r: string) => {
    await using c = await Container.createFromSpec(s, { root: r });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    await c.start();
    await c.wait();
    await new Promise((res) => setTimeout(res, 20));
    return out.trim().split('\n');
  };
  const both = async (f: (root: string) => Promise<void>) => {
    await f(root);
    if (!existsSync('/sys/fs/cgroup/unified/cgroup.procs')) return;
    process.env.BERTH_CGROUP_VERSION = '2';
    process.env.BERTH_CGROUP_MOUNT = '/sys/fs/cgroup/unified';
    try {
      await f(v2.root);
    } finally {
      delete process.env.BERTH_CGROUP_VERSION;
      delete process.env.BERTH_CGROUP_MOUNT;
    }
  };

  it('applies Docker\'s rules when the spec has none (v1 and v2)', async () => {
    await both(async (r) => {
      expect(await runSpec(spec(), r)).toEqual(['blk-denied', 'r-ok', 'w-ok', 'rw-ok']);
    });
  });

  it('a later partial deny takes away just that access, also from a read-write open (v1 and v2)', async () => {
    const rules = [...DOCKER_DEFAULT_DEVICE_RULES, { allow: false, type: 'c', major: 1, minor: 3, access: 'w' }];
    await both(async (r) => {
      expect(await runSpec(spec(rules), r)).toEqual(['blk-denied', 'r-ok', 'w-denied', 'rw-denied']);
    });
  });

  it('the v2 program agrees with the rule semantics on random rule lists (interpreted here)', () => {
    // Reference semantics: per requested access bit, the last rule matching (type, major, minor, bit) decides;
    // no match denies; every requested bit must be allowed.
    type Rule = { allow: boolean; type?: 'a' | 'c' | 'b'; major?: number; minor?: number; access?: string };
    const bits: Record<string, number> = { m: 1, r: 2, w: 4 };
    const decide = (rules: Rule[], type: number, major: number, minor: number, access: number) => {
      for (const bit of [1, 2, 4]) {
        if (!(access & bit)) continue;
        let ok = false;
        for (const r of rules) {
          const t = r.type ?? 'a';
          const mask = [...(r.access ?? 'rwm')].reduce((a, ch) => a | bits[ch]!, 0);
          if (t !== 'a' && (t === 'b' ? 1 : 2) !== type) continue;
          if (r.major !== undefined && r.major !== major) continue;
          if (r.minor !== undefined && r.minor !== minor) continue;
          if (mask & bit) ok = r.allow;
        }
        if (!ok) return 0;
      }
      return 1;
    };
    // A tiny interpreter for the opcodes the generator emits.
    const run = (prog: Buffer, type: number, major: number, minor: number, access: number) => {
      const ctx = [(access << 16) | type, major, minor];
      const r = new Array<number>(11).fill(0);
      for (let pc = 0, steps = 0; steps < 10000; steps++) {
        const code = prog[pc * 8]!;
        const dst = prog[pc * 8 + 1]! & 0xf;
        const src = prog[pc * 8 + 1]! >> 4;
        const off = prog.readInt16LE(pc * 8 + 2);
        const imm = prog.readInt32LE(pc * 8 + 4);
        pc++;
        switch (code) {
          case 0x61: r[dst] = ctx[off / 4]! >>> 0; break;
          case 0x57: r[dst] = r[dst]! & imm; break;
          case 0x77: r[dst] = r[dst]! >>> imm; break;
          case 0xbf: r[dst] = r[src]!; break;
          case 0xb7: r[dst] = imm; break;
          case 0x55: if (r[dst] !== imm) pc += off; break;
          case 0x15: if (r[dst] === imm) pc += off; break;
          case 0x05: pc += off; break;
          case 0x95: return r[0]!;
          default: throw new Error(`unexpected opcode ${code}`);
        }
      }
      throw new Error('program did not terminate');
    };
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const pick = <T>(xs: T[]) => xs[rand(xs.length)]!;
    for (let trial = 0; trial < 300; trial++) {
      const rules: Rule[] = [{ allow: false }];
      for (let i = 0, n = 1 + rand(6); i < n; i++) {
        const rule: Rule = { allow: rand(2) === 0, type: pick(['a', 'c', 'b'] as const) };
        if (rand(2)) rule.major = rand(3);
        if (rand(2)) rule.minor = rand(3);
        rule.access = pick(['r', 'w', 'm', 'rw', 'rm', 'wm', 'rwm']);
        rules.push(rule);
      }
      const prog = deviceFilterProgram(rules);
      for (const type of [1, 2]) for (let major = 0; major < 3; major++) for (let minor = 0; minor < 3; minor++) {
        for (let access = 1; access < 8; access++) {
          expect(run(prog, type, major, minor, access)).toBe(decide(rules, type, major, minor, access));
        }
      }
    }
  });

  it('writes a narrowed type-a rule as its char and block halves on v1', () => {
    expect(v1DeviceLines([{ allow: true, type: 'a', major: 1, minor: 3, access: 'r' }]).map((l) => l.line)).toEqual(['c 1:3 r', 'b 1:3 r']);
    expect(v1DeviceLines([{ allow: false }]).map((l) => l.line)).toEqual(['a']);
  });
});
