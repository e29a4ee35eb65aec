/**
 * The files Docker writes for each container and bind-mounts over the image's: /etc/hosts, /etc/hostname,
 * /etc/resolv.conf. hosts files of containers on a user network also list the other containers of the network by
 * name and alias; they are rewritten in place (the bind mount pins the file) whenever a container comes or goes.
 * @module
 */
import { openSync, closeSync, ftruncateSync, writeSync, writeFileSync } from 'node:fs';

/** An address and the names it answers to. */
export interface HostEntry {
  ip: string;
  names: string[];
}

const LOCALHOST = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

/** A container's /etc/hosts: localhost, its own address, then its peers on the network. */
export function hostsFile(own: HostEntry | undefined, peers: readonly HostEntry[]): string {
  const lines = [...LOCALHOST];
  if (own) lines.push(`${own.ip}\t${own.names.join(' ')}`);
  for (const p of peers) lines.push(`${p.ip}\t${p.names.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** Writes a new file (0644: processes of any user in the container read it). */
export function writeNewFile(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o644 });
}

/**
 * Replaces a file's content in place, keeping its inode (a container sees it through a bind mount). A missing
 * file (its container is being removed) is skipped.
 */
export function rewriteInPlace(path: string, content: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch {
    return;
  }
  try {
    const buf = Buffer.from(content);
    writeSync(fd, buf, 0, buf.length, 0);
    ftruncateSync(fd, buf.length);
  } finally {
    closeSync(fd);
  }
}
