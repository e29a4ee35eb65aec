// An HTTP proxy in front of a test registry that fails, cuts, corrupts or redirects requests on demand.
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP proxy in front of a registry that can fail requests, cut blobs short, or redirect blobs elsewhere. */
export async function proxy(target: string, behave: (req: { url: string; n: number; auth: string | undefined }) => 'pass' | 'fail' | 'cut' | 'corrupt' | { redirect: string }) {
  let n = 0;
  const seen: { url: string; auth: string | undefined }[] = [];
  const server: Server = createServer((req, res) => {
    const info = { url: req.url ?? '', n: n++, auth: req.headers.authorization };
    seen.push({ url: info.url, auth: info.auth });
    const action = behave(info);
    if (action === 'fail') {
      res.writeHead(503).end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
      return;
    }
    if (typeof action === 'object') {
      res.writeHead(307, { location: action.redirect }).end();
      return;
    }
    const up = httpRequest(`${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (action === 'cut') {
        res.flushHeaders();
        upRes.once('data', (chunk: Buffer) => {
          res.write(chunk.subarray(0, Math.min(chunk.length, 100)), () => setTimeout(() => res.destroy(), 10));
        });
      } else if (action === 'corrupt') {
        // Same length, one byte flipped: only a digest check can tell.
        let first = true;
        upRes.on('data', (chunk: Buffer) => {
          if (first && chunk.length > 0) {
            chunk = Buffer.from(chunk);
            chunk[0] = chunk[0]! ^ 0xff;
            first = false;
          }
          res.write(chunk);
        });
        upRes.on('end', () => res.end());
      } else upRes.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, host: new URL(url).host, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

