/**
 * IPv4 addresses and CIDR blocks as 32-bit numbers: parsing, formatting, overlap. Pure functions.
 * @module
 */

/** An IPv4 block: its first address and prefix length. */
export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  network: number;
  prefix: number;
}

/** Parses dotted IPv4 (`10.0.0.1`) into an unsigned 32-bit number, or undefined when it is not one. */
export function parseIPv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255) || m.slice(1).some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** Formats an unsigned 32-bit number as dotted IPv4. */
export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The netmask of a prefix length as a number. */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `a.b.c.d/n`. Returns an error text when it is not a valid block, including when host bits are set (as
 * Docker refuses `172.18.0.1/16`, naming the block meant).
 */
export function parseCidr(text: string): Cidr | string {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const ip = m ? parseIPv4(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) return `"${text}" is not an IPv4 CIDR block like 172.20.0.0/16`;
  const network = (ip & maskOf(prefix)) >>> 0;
  if (network !== ip) return `"${text}" has host bits set: did you mean ${formatCidr({ network, prefix })}?`;
  return { network, prefix };
}

/** `a.b.c.d/n`. */
export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.network)}/${c.prefix}`;
}

/** The last address of the block (its broadcast address). */
export function lastAddress(c: Cidr): number {
  return (c.network | (~maskOf(c.prefix) >>> 0)) >>> 0;
}

/** Whether `ip` lies in the block. */
export function contains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.network;
}

/** Whether two blocks share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.network & maskOf(p)) >>> 0) === ((b.network & maskOf(p)) >>> 0);
}

/** A locally administered MAC derived from an IPv4 address, as Docker does (02:42:<ip>), so ARP caches stay right when an address is reused. */
export function macFromIPv4(ip: number): string {
  return ['02', '42', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
