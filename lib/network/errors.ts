/**
 * Errors of berth's networking. Each has a stable `code`; messages say what to change.
 * @module
 */
import { BerthError } from '../errors.js';

/** No network with this name or id exists in the state root. */
export class NetworkNotFoundError extends BerthError {
  constructor(nameOrId: string) {
    super('ERR_NETWORK_NOT_FOUND', `no such network: ${nameOrId} (create it with Network.create({ name: '${nameOrId}' }))`);
  }
}

/** A network with this name already exists. */
export class NetworkExistsError extends BerthError {
  constructor(name: string) {
    super('ERR_NETWORK_EXISTS', `a network named "${name}" already exists`);
  }
}

/** The requested subnet overlaps a network or route the host already has. */
export class SubnetConflictError extends BerthError {
  constructor(message: string) {
    super('ERR_SUBNET_CONFLICT', message);
  }
}

/** The network has no free address left. */
export class AddressExhaustedError extends BerthError {
  constructor(network: string, subnet: string) {
    super('ERR_NO_ADDRESS', `network ${network} (${subnet}) has no free address left: remove containers or use a larger subnet`);
  }
}

/** The network still has containers attached and cannot be removed. */
export class NetworkInUseError extends BerthError {
  constructor(name: string, containers: string[]) {
    super('ERR_NETWORK_IN_USE', `network ${name} has containers attached (${containers.join(', ')}): remove them first`);
  }
}

/** A host port of a published port cannot be bound (taken, or not allowed). */
export class PortBindError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PORT_BIND', message, options);
  }
}

/** The kernel refused a network setup step (netlink, nftables). */
export class NetworkSetupError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NETWORK_SETUP', message, options);
  }
}

/** The container already has an address on that network (`docker network connect` twice). */
export class EndpointExistsError extends BerthError {
  constructor(container: string, network: string) {
    super('ERR_ENDPOINT_EXISTS', `container ${container} is already connected to network ${network}`);
  }
}
