/**
 * Runs a Node script (ESM) in a process of its own, as another program sharing the state root would: the built
 * library is imported as `Container`, and `root` and `rootfs` are defined. Resolves with its exit code and output.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dist = new URL('../../dist/lib/index.js', import.meta.url).pathname;

export function nodeScript(
  dir: string,
  root: string,
  rootfs: string,
  body: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = join(dir, `s${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, `import { Container } from ${JSON.stringify(dist)};\nconst root = ${JSON.stringify(root)};\nconst rootfs = ${JSON.stringify(rootfs)};\n${body}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
