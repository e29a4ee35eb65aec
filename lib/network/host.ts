/**
 * What the host already has: its IPv4 routes and addresses (subnets must not collide with them), its resolvers
 * (copied into containers' resolv.conf), whether it forwards IPv4. Read-only: nothing here changes the host.
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { parseIPv4, type Cidr, maskOf } from './cidr.js';

/** A block the host uses, and where it comes from (for error messages). */
export interface HostBlock extends Cidr {
  source: string;
}

/** IPv4 blocks in the host's main routing table (except the default route) and on its interfaces. */
export function hostBlocks(): HostBlock[] {
  const out: HostBlock[] = [];
  try {
    const lines = readFileSync('/proc/net/route', 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (!iface || !dest || !mask) continue;
      // /proc/net/route prints addresses in host (little-endian) byte order.
      const network = Buffer.from(dest, 'hex').readUInt32LE(0);
      const maskNum = Buffer.from(mask, 'hex').readUInt32LE(0);
      const prefix = 32 - zeroBits(maskNum);
      if (prefix === 0) continue; // the default route covers everything; it is not a conflict
      out.push({ network: (network & maskOf(prefix)) >>> 0, prefix, source: `route via ${iface}` });
    }
  } catch {
    // no procfs: only the interfaces below
  }
  for (const [iface, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || a.internal) continue;
      const ip = parseIPv4(a.address);
      const prefix = Number(a.cidr?.split('/')[1] ?? 32);
      if (ip !== undefined) out.push({ network: (ip & maskOf(prefix)) >>> 0, prefix, source: `address of ${iface}` });
    }
  }
  return out;
}

function zeroBits(mask: number): number {
  let zeros = 0;
  for (let i = 0; i < 32; i++) if (!(mask & (1 << i))) zeros++;
  return zeros;
}

/** Whether the host forwards IPv4 between interfaces (needed for containers to reach beyond the host). */
export function ipForwarding(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

/**
 * Turns IPv4 forwarding on in this process's network namespace, as Docker's daemon does (`--ip-forward`, on by
 * default there). berth does it only when asked: it is a host-wide switch, never turned off again.
 */
export function enableIpForwarding(): void {
  if (!ipForwarding()) writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
}

/** Whether a network interface of this name exists in the host's namespace. */
export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/**
 * Whether a network's bridge is up with an address in THIS process's network namespace. Asked through
 * getifaddrs (netlink, always this namespace), not /sys/class/net, which shows the namespace of whoever mounted
 * that sysfs. Bridges always carry their gateway address, so an interface without one is not ours to trust.
 */
export function bridgePresent(name: string): boolean {
  return (networkInterfaces()[name] ?? []).some((a) => a.family === 'IPv4');
}

/** Docker's fallback when the host has no usable resolver (only local ones a container cannot reach). */
export const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

/**
 * The host's resolver configuration as a container should see it: nameservers on the host's loopback are
 * unreachable from a container and dropped (systemd-resolved's real upstreams are used when present); when none
 * remain, Docker's fallback (Google's public resolvers) applies.
 */
export function containerResolvConf(extraNameservers: readonly string[] = [], extraSearch: readonly string[] = []): string {
  let text = '';
  for (const path of ['/etc/resolv.conf']) {
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      text = '';
    }
  }
  const isLocal = (ns: string) => ns.startsWith('127.') || ns === '::1';
  let servers = text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((s): s is string => !!s);
  if (servers.length && servers.every(isLocal) && existsSync('/run/systemd/resolve/resolv.conf')) {
    text = readFileSync('/run/systemd/resolve/resolv.conf', 'utf8');
    servers = text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((s): s is string => !!s);
  }
  const kept = servers.filter((s) => !isLocal(s) && !s.includes(':'));
  const nameservers = extraNameservers.length ? [...extraNameservers] : kept.length ? kept : FALLBACK_NAMESERVERS;
  const other = text
    .split('\n')
    .filter((l) => /^\s*(search|domain|options)\s/.test(l))
    .filter((l) => !(extraSearch.length && /^\s*(search|domain)\s/.test(l)));
  const lines = [...nameservers.map((s) => `nameserver ${s}`), ...(extraSearch.length ? [`search ${extraSearch.join(' ')}`] : []), ...other];
  return `${lines.join('\n')}\n`;
}
