/**
 * The JSON of a container's state record. A container's spec carries its seccomp filter (about 8 KB for Docker's
 * profile), the same frozen object for every container of the same shape; it is serialized once and spliced into
 * each record, instead of on each of the three writes of every container's life.
 * @module
 */
import { randomBytes } from 'node:crypto';

const frozenJson = new WeakMap<object, string>();
/** Stands in for the filter while the rest is serialized; random, so that no string in a spec can match it. */
const MARK = `berth-seccomp-${randomBytes(8).toString('hex')}`;
const QUOTED_MARK = JSON.stringify(MARK);

/** `JSON.stringify(state)`, with the spec's `linux.seccomp` serialized once per (frozen) filter object. */
export function stateJson(state: { spec?: unknown }): string {
  const spec = state.spec as { linux?: { seccomp?: unknown } } | undefined;
  const seccomp = spec?.linux?.seccomp;
  // Only a frozen filter is known not to change between two writes (resolve.ts freezes what it hands out).
  if (!seccomp || typeof seccomp !== 'object' || !Object.isFrozen(seccomp)) return JSON.stringify(state);
  let json = frozenJson.get(seccomp);
  if (json === undefined) {
    json = JSON.stringify(seccomp);
    frozenJson.set(seccomp, json);
  }
  const text = JSON.stringify({ ...state, spec: { ...spec, linux: { ...spec.linux, seccomp: MARK } } });
  const at = text.indexOf(QUOTED_MARK);
  return `${text.slice(0, at)}${json}${text.slice(at + QUOTED_MARK.length)}`;
}
