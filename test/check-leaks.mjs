// Runs after the test suite (npm test): fails if the suite left anything of berth's on the host.
// A separate step, because vitest does not turn an error in global teardown into a failing exit status.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const problems = [];

// cgroups: any directory named *berth* in any hierarchy (depth ≤ 3, as the project's checks look).
const walk = (dir, depth) => {
  let entries = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const p = join(dir, e.name);
    if (/berth/i.test(e.name)) problems.push(`cgroup ${p}`);
    else if (depth > 1) walk(p, depth - 1);
  }
};
walk('/sys/fs/cgroup', 3);

// mounts mentioning berth in the host's mount table
for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
  if (/berth/i.test(line)) problems.push(`mount ${line.split(' ')[4]}`);
}

// state roots the tests made and did not remove
for (const name of readdirSync(tmpdir())) {
  if (!name.startsWith('berth-test-')) continue;
  try {
    if (statSync(join(tmpdir(), name)).isDirectory()) problems.push(`state root ${join(tmpdir(), name)}`);
  } catch {
    // removed meanwhile
  }
}

// network interfaces: bridges (berth-*) and container veths (bveth*) berth made; berth0 belongs to the system root
let links = [];
try {
  links = readdirSync('/sys/class/net');
} catch {
  // no sysfs
}
for (const name of links) if (/^(berth-|bveth)/.test(name)) problems.push(`network interface ${name}`);

// nftables tables of berth's networks (ip berth_<id>)
try {
  const tables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  for (const m of tables.matchAll(/^table ip (berth_[0-9a-f]+)$/gm)) problems.push(`nftables table ${m[1]}`);
} catch {
  // nft not installed: berth makes no tables then
}

if (problems.length) {
  console.error(`The test suite leaked ${problems.length} thing(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('leak check: nothing of berth left on the host');
