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
