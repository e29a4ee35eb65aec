// Docker's reference normalization and its error cases.
import { describe, expect, it } from 'vitest';
import { InvalidReferenceError, parseReference } from '../lib/image/reference.js';

const D = 'sha256:' + 'a'.repeat(64);

describe('parseReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['team/app', 'docker.io/team/app:latest', 'team/app:latest'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/app:v1', 'localhost:5000/app:v1', 'localhost:5000/app:v1'],
    ['127.0.0.1:5000/a/b/c:v-1.2_3', '127.0.0.1:5000/a/b/c:v-1.2_3', '127.0.0.1:5000/a/b/c:v-1.2_3'],
    ['[::1]:5000/app', '[::1]:5000/app:latest', '[::1]:5000/app:latest'],
    ['registry.example.com/x__y/a-b.c', 'registry.example.com/x__y/a-b.c:latest', 'registry.example.com/x__y/a-b.c:latest'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1.36@${D}`, `docker.io/library/busybox:1.36@${D}`, `busybox:1.36@${D}`],
  ])('%s → %s', (input, full, familiar) => {
    const r = parseReference(input);
    expect(r.toString()).toBe(full);
    expect(r.familiar).toBe(familiar);
  });

  it('splits the parts', () => {
    const r = parseReference('localhost:5000/team/app:v2');
    expect(r).toMatchObject({ domain: 'localhost:5000', path: 'team/app', tag: 'v2', digest: undefined, repository: 'localhost:5000/team/app' });
    expect(parseReference(`app@${D}`).tag).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['docker.io/Team/app', /lowercase/],
    ['busy box', /whitespace/],
    ['busybox:', /invalid tag/],
    ['busybox:-bad', /invalid tag/],
    [`busybox:${'t'.repeat(129)}`, /invalid tag/],
    ['busybox@sha256:abc', /invalid digest/],
    ['busybox@md5:' + 'a'.repeat(32), /invalid digest/],
    ['a//b', /invalid reference format/],
    ['-app', /invalid reference format/],
    ['app_', /invalid reference format/],
    [':tag', /missing repository/],
    ['bad_host.com:x/app', /invalid tag|invalid registry/],
    [`${'a'.repeat(256)}`, /longer than 255/],
  ])('rejects %j', (input, reason) => {
    expect(() => parseReference(input)).toThrow(InvalidReferenceError);
    expect(() => parseReference(input)).toThrow(reason);
  });
});
