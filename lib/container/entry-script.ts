/**
 * Where berth's own helper programs (a CLI container's shim, a detached container's log monitor) are, to start
 * them with this Node binary.
 * @module
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The compiled entry point `relativeToLib` (e.g. `container/shim/main.js`) under the package's `dist/lib`, also
 * when berth runs from its TypeScript sources (the tests): then the build in dist/ is used.
 */
export function compiledScript(relativeToLib: string): string {
  const lib = resolve(fileURLToPath(new URL('..', import.meta.url))); // <pkg>/(dist/)lib
  const direct = join(lib, relativeToLib);
  if (existsSync(direct)) return direct;
  return join(resolve(lib, '..'), 'dist', 'lib', relativeToLib);
}
