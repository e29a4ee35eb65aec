import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Container, Network } from '../../lib/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The busybox root filesystem built by test/prepare.sh from Debian's busybox-static. */
export const BUSYBOX = process.env.BERTH_FIXTURES
  ? join(process.env.BERTH_FIXTURES, 'busybox')
  : '/var/tmp/berth-fixtures/busybox';

/**
 * A fresh state root for one test file, and its own copy of the busybox rootfs: containers run from a bind of
 * their rootfs, so mount points and files they create land in it, and the shared fixture must stay pristine.
 * `cleanup()` removes both.
 */
export function tempRoot(label: string): { root: string; rootfs: string; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), `berth-test-${label}-`));
  const rootfs = join(dir, 'rootfs');
  cpSync(BUSYBOX, rootfs, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  const root = join(dir, 'state');
  const cleanup = async () => {
    await clearRoot(root);
    rmSync(dir, { recursive: true, force: true });
  };
  return { root, rootfs, cleanup };
}

/**
 * Removes what a state root holds outside its directory: containers (and their cgroups) a failed test left, and
 * networks (bridges, nftables tables). A container's veth goes in the background after it exits, so a network
 * still in use is retried for a few seconds.
 */
export async function clearRoot(root: string): Promise<void> {
  if (!existsSync(root)) return;
  for (const info of await Container.list({ root, all: true })) {
    await (await Container.get(info.id, { root })).remove({ force: true }).catch(() => undefined);
  }
  for (const n of await Network.list({ root })) {
    const net = await Network.get(n.id, { root });
    for (let i = 0; i < 50; i++) {
      if (await net.remove().then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Number of lines in this process's mount table. */
export function mountCount(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').length;
}

/** Open fds of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Pids whose parent is this process (containers not yet reaped, or leaked). */
export function childPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const status = readFileSync(`/proc/${d}/status`, 'utf8');
      const ppid = /^PPid:\s+(\d+)/m.exec(status)?.[1];
      if (Number(ppid) === process.pid) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** cgroup directories berth created for containers, across every hierarchy. */
export function berthCgroups(): string[] {
  const out: string[] = [];
  let top: string[] = [];
  try {
    top = readdirSync('/sys/fs/cgroup');
  } catch {
    return out;
  }
  const scan = (dir: string, depth: number) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) {
      if (/berth/i.test(e)) out.push(join(dir, e));
      if (depth > 0) scan(join(dir, e), depth - 1);
    }
  };
  scan('/sys/fs/cgroup', 0);
  for (const t of top) scan(join('/sys/fs/cgroup', t), 1);
  return out;
}
