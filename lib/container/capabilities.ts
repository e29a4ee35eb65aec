/**
 * Linux capability names and numbers, and Docker's rules for combining the default set with `capAdd`/`capDrop`.
 * @module
 */
import { readFileSync } from 'node:fs';

/** Every capability the kernel headers name, in bit order (CAP_CHOWN = 0 ...). */
export const CAPABILITY_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

/** A capability name in canonical form (`CAP_` prefix, upper case). */
export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** Docker's default capability set (moby, 2026): bounding = effective = permitted. */
export const DOCKER_DEFAULT_CAPABILITIES: readonly CapabilityName[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Accepts `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN`; returns the canonical name or `undefined`. */
export function normalizeCapability(name: string): CapabilityName | undefined {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return (CAPABILITY_NAMES as readonly string[]).includes(full) ? (full as CapabilityName) : undefined;
}

/** The bit number of a canonical capability name. */
export function capabilityNumber(name: CapabilityName): number {
  return CAPABILITY_NAMES.indexOf(name);
}

/** A set of canonical names as a 64-bit mask. */
export function capabilityMask(names: readonly string[]): bigint {
  let mask = 0n;
  for (const n of names) {
    const canonical = normalizeCapability(n);
    if (canonical) mask |= 1n << BigInt(capabilityNumber(canonical));
  }
  return mask;
}

/**
 * Docker's combination rule: start from the defaults, or from everything when `capAdd` holds `ALL`, or from
 * nothing when `capDrop` holds `ALL`; then add, then drop. Names must already be validated.
 */
export function combineCapabilities(
  defaults: readonly CapabilityName[],
  capAdd: readonly string[],
  capDrop: readonly string[],
  all: readonly CapabilityName[] = CAPABILITY_NAMES,
): CapabilityName[] {
  const isAll = (n: string) => n.trim().toUpperCase() === 'ALL';
  const add = capAdd.filter((n) => !isAll(n)).map((n) => normalizeCapability(n)!);
  const drop = capDrop.filter((n) => !isAll(n)).map((n) => normalizeCapability(n)!);
  let set: Set<CapabilityName>;
  if (capAdd.some(isAll)) set = new Set(all);
  else if (capDrop.some(isAll)) set = new Set();
  else set = new Set(defaults);
  if (!capAdd.some(isAll)) for (const c of add) set.add(c);
  if (!capDrop.some(isAll)) for (const c of drop) set.delete(c);
  // With "--cap-drop ALL --cap-add X" Docker keeps X: adds win over a blanket drop.
  if (capDrop.some(isAll)) for (const c of add) set.add(c);
  return CAPABILITY_NAMES.filter((c) => set.has(c));
}

let lastCapCache: number | undefined;

/** The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`). */
export function lastCapability(): number {
  if (lastCapCache === undefined) {
    try {
      lastCapCache = Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim(), 10);
    } catch {
      lastCapCache = CAPABILITY_NAMES.length - 1;
    }
  }
  return lastCapCache;
}
