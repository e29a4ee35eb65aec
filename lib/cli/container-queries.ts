/**
 * `wait` and `port`: what scripts ask about containers (docker's names, output and statuses).
 * @module
 */
import { Container } from '../container/container.js';
import { UsageError } from './args.js';
import type { Command, Context } from './command.js';
import { printError } from './common.js';

async function get(ctx: Context, idOrName: string): Promise<Container> {
  return Container.get(idOrName, { root: ctx.config().root });
}

/** `berth wait CONTAINER...`: blocks until each stops, printing its exit code (docker's order and statuses). */
export const waitCommand: Command = {
  name: 'wait',
  usage: 'CONTAINER [CONTAINER...]',
  summary: 'Block until one or more containers stop, then print their exit codes',
  args: { min: 1 },
  async run(ctx, _f, args) {
    let status = 0;
    for (const arg of args) {
      try {
        const exit = await (await get(ctx, arg)).wait();
        ctx.stdout.write(`${exit.exitCode}\n`);
      } catch (e) {
        printError(ctx, e);
        status = 1;
      }
    }
    return status;
  },
};

/** `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports, as docker lists them. */
export const portCommand: Command = {
  name: 'port',
  usage: 'CONTAINER [PRIVATE_PORT[/PROTO]]',
  summary: 'List port mappings or a specific mapping for the container',
  args: { min: 1, max: 2 },
  async run(ctx, _f, args) {
    let filter: { port: number; protocol: string } | undefined;
    if (args[1] !== undefined) {
      const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(args[1]);
      if (!m || Number(m[1]) > 65535) throw new UsageError('berth port', `invalid port "${args[1]}": give PORT or PORT/PROTO, e.g. 80/tcp`);
      filter = { port: Number(m[1]), protocol: m[2] ?? 'tcp' };
    }
    let ports;
    try {
      const info = await (await get(ctx, args[0]!)).inspect();
      ports = info.status === 'running' ? (info.network?.ports ?? []) : [];
    } catch (e) {
      printError(ctx, e);
      return 1;
    }
    const sorted = [...ports].sort((a, b) => a.container - b.container || a.protocol.localeCompare(b.protocol) || a.host - b.host);
    const address = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
    if (filter) {
      const matching = sorted.filter((p) => p.container === filter.port && p.protocol === filter.protocol);
      if (matching.length === 0) {
        ctx.stderr.write(`Error: No public port '${filter.port}/${filter.protocol}' published for ${args[0]}\n`);
        return 1;
      }
      for (const p of matching) ctx.stdout.write(`${address(p.hostIp, p.host)}\n`);
      return 0;
    }
    for (const p of sorted) ctx.stdout.write(`${p.container}/${p.protocol} -> ${address(p.hostIp, p.host)}\n`);
    return 0;
  },
};
