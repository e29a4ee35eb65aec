/**
 * Container options about networking (`network`, `networkAliases`, `ports`, `dns`, `dnsSearch`), validated with
 * zod; merged into the container options' schema.
 * @module
 */
import { z } from 'zod';
import { parseIPv4 } from './cidr.js';

const ipv4 = z.string().refine((s) => parseIPv4(s) !== undefined, 'must be an IPv4 address like 127.0.0.1');

/** A port to publish (Docker's `-p [hostIp:][host:]container[/protocol]`). */
export const portOption = z.strictObject({
  container: z.number().int().min(1).max(65535),
  host: z.number().int().min(0).max(65535).optional(),
  hostIp: ipv4.optional(),
  protocol: z.enum(['tcp', 'udp']).optional(),
});

/** `bridge` | `none` | `host` | `container:<id or name>` | a network's name. */
export const networkMode = z
  .string()
  .min(1)
  .refine((s) => /^container:.+$/.test(s) || /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(s), 'must be bridge, none, host, container:<id or name>, or a network name');

const dnsName = z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$/, 'must be a DNS name');

/** The networking fields of the container options' schema. */
export const containerNetworkFields = {
  /** Network mode: `bridge`, `none`, `host`, `container:<id>`, or a network name. */
  network: networkMode.optional(),
  /** Extra names the container answers to on a user network. */
  networkAliases: z.array(dnsName).optional(),
  /** More networks to connect it to at create. */
  networks: z.array(z.strictObject({ name: networkMode, aliases: z.array(dnsName).optional() })).optional(),
  /** Ports to publish on the host. */
  ports: z.array(portOption).optional(),
  /** Nameservers written to the container's resolv.conf instead of the host's. */
  dns: z.array(ipv4).optional(),
  /** Search domains of the container's resolv.conf. */
  dnsSearch: z.array(dnsName).optional(),
};

/** A port to publish: `{ container: 80, host: 8080, hostIp: '127.0.0.1', protocol: 'tcp' }`. */
export interface PortOption {
  /** The port inside the container. */
  container: number;
  /** The host port; 0 or absent picks a free one (see `inspect().ports`). */
  host?: number;
  /** The host address to listen on (default `0.0.0.0`, every IPv4 address, as Docker). */
  hostIp?: string;
  /** Default `tcp`. */
  protocol?: 'tcp' | 'udp';
}

/** One more network for a container at create: `{ name: 'backend', aliases: ['api'] }`. */
export interface NetworkAttachment {
  /** The network's name or id (`bridge` for the default network). */
  name: string;
  /** Extra names the container answers to on that network (user networks only). */
  aliases?: string[];
}
