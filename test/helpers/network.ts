// Shared by the network test files: what of berth's is on the host, polling for the kernel's asynchronous
// cleanup, and a started container whose output is collected.
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { Container } from '../../lib/index.js';

/** Host interfaces whose names are berth's (bridges berth*, veths bveth*). */
export function berthLinks(): string[] {
  return readdirSync('/sys/class/net').filter((n) => /^(berth|bveth)/.test(n));
}

/** Polls `f` until it returns true (the kernel deletes a dead namespace's interfaces asynchronously). */
export async function eventually(f: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (f()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return f();
}

/** Creates and starts a container in `root` from `rootfs`, collecting stdout and stderr together. */
export async function started(root: string, rootfs: string, options: Omit<Parameters<typeof Container.create>[0], 'root' | 'rootfs'>) {
  const c = await Container.create({ root, rootfs, ...options } as Parameters<typeof Container.create>[0]);
  let out = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (out += d));
  await c.start();
  return { c, output: () => out };
}

/**
 * Sends `text` to 127.0.0.1:port over TCP and resolves with the reply (once it is as long as `text`, or the
 * server closed), retrying while the server starts; '' at the deadline.
 */
export async function tcpEcho(port: number, text: string, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const reply = await new Promise<string>((resolve) => {
      let got = '';
      const s = connect({ host: '127.0.0.1', port }, () => s.write(text));
      s.on('data', (d) => {
        got += d;
        if (got.length >= text.length) s.end();
      });
      s.on('error', () => resolve(''));
      s.on('close', () => resolve(got));
    });
    if (reply || Date.now() > deadline) return reply;
    await new Promise((r) => setTimeout(r, 100));
  }
}
