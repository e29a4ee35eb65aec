/**
 * `berth network ls | create | rm | inspect | connect | disconnect`.
 * @module
 */
import { Network } from '../network/network.js';
import { UsageError } from './args.js';
import type { Command } from './command.js';
import { eachArg, inspectCommand } from './common.js';
import { formatRows } from './format.js';
import { inspectNetwork, networkRow, NETWORKS_TABLE } from './views.js';

const ls: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: '[OPTIONS]',
  summary: 'List networks',
  flags: [
    { long: 'quiet', short: 'q', type: 'bool', help: 'Only display network IDs' },
    { long: 'format', type: 'string', help: 'Format output using a custom template (table, table TEMPLATE, json, TEMPLATE)' },
    { long: 'no-trunc', type: 'bool', help: 'Do not truncate the output' },
  ],
  args: { max: 0 },
  async run(ctx, f) {
    const list = await Network.list({ root: ctx.config().root });
    const full = f.bool('no-trunc');
    if (f.bool('quiet')) {
      for (const n of list) ctx.stdout.write(`${full ? n.id : n.id.slice(0, 12)}\n`);
      return 0;
    }
    ctx.stdout.write(formatRows(list.map((n) => networkRow(n, full)), f.string('format'), 'berth network ls', NETWORKS_TABLE));
    return 0;
  },
};

const create: Command = {
  name: 'create',
  usage: '[OPTIONS] NETWORK',
  summary: 'Create a network',
  flags: [
    { long: 'driver', short: 'd', type: 'string', help: 'Driver to manage the Network (bridge only)', defaultText: '"bridge"' },
    { long: 'subnet', type: 'string', help: 'Subnet in CIDR format that represents a network segment' },
    { long: 'gateway', type: 'string', help: 'IPv4 Gateway for the master subnet' },
    { long: 'internal', type: 'bool', help: 'Restrict external access to the network' },
    { long: 'label', type: 'list', help: 'Set metadata on a network', valueName: 'list' },
    { long: 'opt', short: 'o', type: 'list', help: 'Set driver specific options (com.docker.network.driver.mtu=1400)', valueName: 'map' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, f, args) {
    const driver = f.string('driver') ?? 'bridge';
    if (driver !== 'bridge') throw new UsageError('berth network create', `network driver "${driver}" is not supported (bridge only)`);
    let mtu: number | undefined;
    for (const o of f.list('opt')) {
      const [k, v = ''] = o.split(/=(.*)/s, 2) as [string, string?];
      if (k === 'com.docker.network.driver.mtu' || k === 'mtu') mtu = Number(v);
      else throw new UsageError('berth network create', `unknown driver option "${k}" (com.docker.network.driver.mtu)`);
    }
    const labels = Object.fromEntries(f.list('label').map((l) => {
      const eq = l.indexOf('=');
      return eq < 0 ? [l, ''] : [l.slice(0, eq), l.slice(eq + 1)];
    }));
    const subnet = f.string('subnet');
    const gateway = f.string('gateway');
    const net = await Network.create({
      root: ctx.config().root,
      name: args[0]!,
      ...(subnet ? { subnet } : {}),
      ...(gateway ? { gateway } : {}),
      ...(f.bool('internal') ? { internal: true } : {}),
      ...(mtu !== undefined ? { mtu } : {}),
      ...(Object.keys(labels).length ? { labels } : {}),
    });
    ctx.stdout.write(`${net.id}\n`);
    return 0;
  },
};

const rm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: 'NETWORK [NETWORK...]',
  summary: 'Remove one or more networks',
  args: { min: 1 },
  run: (ctx, _f, args) => eachArg(ctx, args, async (a) => (await Network.get(a, { root: ctx.config().root })).remove()),
};

const inspect = inspectCommand('network', 'network', async (ctx, a) => inspectNetwork(await (await Network.get(a, { root: ctx.config().root })).inspect()));

const connect: Command = {
  name: 'connect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  summary: 'Connect a container to a network',
  flags: [{ long: 'alias', type: 'list', help: 'Add network-scoped alias for the container', valueName: 'strings' }],
  args: { min: 2, max: 2 },
  async run(ctx, f, args) {
    const net = await Network.get(args[0]!, { root: ctx.config().root });
    const aliases = f.list('alias');
    await net.connect(args[1]!, aliases.length ? { aliases } : {});
    return 0;
  },
};

const disconnect: Command = {
  name: 'disconnect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  summary: 'Disconnect a container from a network',
  flags: [{ long: 'force', short: 'f', type: 'bool', help: 'Force the container to disconnect from a network' }],
  args: { min: 2, max: 2 },
  async run(ctx, _f, args) {
    await (await Network.get(args[0]!, { root: ctx.config().root })).disconnect(args[1]!);
    return 0;
  },
};

/** `network` management group. */
export const networkGroup: Command = {
  name: 'network',
  usage: 'COMMAND',
  summary: 'Manage networks',
  subcommands: [connect, create, disconnect, inspect, ls, rm],
};
