// The escape probe (test/fixtures/probe.c): built static into a test's rootfs, run inside containers, its
// "name=RESULT" lines parsed into a map.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../fixtures/probe.c', import.meta.url));

/** Compiles the probe to `<rootfs>/probe` (static: the busybox rootfs has no libc); returns its path inside. */
export function buildProbe(rootfs: string): string {
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', join(rootfs, 'probe'), SOURCE], { stdio: 'pipe' });
  return '/probe';
}

/** Parses the probe's output: probe name → `OK`, `OK:detail`, an errno name, `ESCAPED`, `SKIPPED`... */
export function parseProbe(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** major:minor of the host's first block device (/proc/partitions), for the mknod probe. */
export function hostBlockDevice(): string | undefined {
  const line = readFileSync('/proc/partitions', 'utf8').split('\n').slice(2).find((l) => l.trim());
  const m = line && /^\s*(\d+)\s+(\d+)/.exec(line);
  return m ? `${m[1]}:${m[2]}` : undefined;
}
