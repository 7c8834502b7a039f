/** End to end: Apps over TcpTransport against an in-process BrokerServer. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { App, chain, chord, currentTask, group, RetryLater, signature } from '../../src/index.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { until } from './tcp-helpers.js';

describe('App over TCP', () => {
  let server: BrokerServer;
  let producer: App;
  let workerApp: App;
  const runs = new Map<string, number>();
  beforeAll(async () => {
    server = new BrokerServer({ port: 0 });
    await server.listen();
    const { port } = server.address();
    producer = new App({ transport: new TcpTransport({ port }) });
    workerApp = new App({ transport: new TcpTransport({ port }) });
    const register = (app: App): void => {
      app.task('add', (a: number, b: number) => a + b);
      app.task('concat', (...xs: unknown[]) => xs.join(','));
      app.task('flaky', (key: string) => {
        const n = (runs.get(key) ?? 0) + 1;
        runs.set(key, n);
        if (n < 3) throw new RetryLater(5);
        return n;
      });
      app.task('bytes', (b: Uint8Array) => new Uint8Array([...b].reverse()));
      app.task('slow', async () => {
        const ctx = currentTask();
        ctx.progress(0.5);
        ctx.progress({ step: 'two' });
        await new Promise((resolve, reject) => { ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)); setTimeout(resolve, 100); });
        return 'done';
      });
      app.task('forever', (ms: number) => new Promise((resolve, reject) => {
        const signal = currentTask().signal;
        const t = setTimeout(resolve, ms);
        signal.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); });
      }));
    };
    register(producer);
    register(workerApp);
    await workerApp.worker({ concurrency: 8, prefetch: 8 }).start();
  });
  afterAll(async () => {
    await producer.close();
    await workerApp.close();
    await server.close();
  });

  it('runs a task and returns its result', async () => {
    expect(await (await producer.send(signature('add', [2, 3]))).get({ timeout: 5_000 })).toBe(5);
  });

  it('runs a chain, a group and a chord', async () => {
    expect(await (await producer.send(chain(signature('add', [1, 2]), signature('add', [10]), signature('add', [100])))).get({ timeout: 5_000 })).toBe(113);
    expect(await (await producer.send(group(signature('add', [1, 1]), signature('add', [2, 2])))).get({ timeout: 5_000 })).toEqual([2, 4]);
    expect(await (await producer.send(chord(group(signature('add', [1, 1]), signature('add', [2, 2]), signature('add', [3, 3])), signature('concat', ['r'])))).get({ timeout: 5_000 })).toBe('r,2,4,6');
  });

  it('delivers an ETA task no earlier than its ETA', async () => {
    const eta = Date.now() + 120;
    const r = await producer.send(signature('add', [1, 1], { eta }));
    expect(await r.get({ timeout: 5_000 })).toBe(2);
    expect((await r.state()).updatedAt).toBeGreaterThanOrEqual(eta);
  });

  it('retries across the socket', async () => {
    const r = await producer.send(signature('flaky', ['k1'], { retries: 0 }));
    expect(await r.get({ timeout: 5_000 })).toBe(3);
    expect((await r.state()).attempts).toBe(3);
  });

  it('carries binary arguments and results', async () => {
    const r = await producer.send(signature('bytes', [new Uint8Array([1, 2, 3])]));
    expect([...(await r.get({ timeout: 5_000 }) as Uint8Array)]).toEqual([3, 2, 1]);
  });

  it('streams progress values to the producer', async () => {
    const r = await producer.send(signature('slow'));
    const seen: unknown[] = [];
    for await (const v of r.progress) seen.push(v);
    expect(seen).toEqual([0.5, { step: 'two' }]);
    expect(await r.get()).toBe('done');
  });

  it('revokes a pending task and aborts a running one', async () => {
    const sig = signature('forever', [60_000]);
    let started = false;
    const unwatch = producer.transport.watch(sig.id, (e) => { if (e.type === 'state' && e.record.state === 'STARTED') started = true; });
    const running = await producer.send(sig);
    await until(() => started);
    unwatch();
    await running.revoke();
    await expect(running.get({ timeout: 5_000 })).rejects.toMatchObject({ code: 'ERR_REVOKED' });
    const pending = await producer.send(signature('add', [1, 2], { eta: Date.now() + 60_000 }));
    await pending.revoke();
    expect((await pending.state()).state).toBe('REVOKED');
  });

  it('a task that finishes in the turn it started in sends no STARTED: its settle follows in the same flush and supersedes it', async () => {
    const sig = signature('add', [2, 3]);
    const states: string[] = [];
    const unwatch = producer.transport.watch(sig.id, (e) => { if (e.type === 'state') states.push(e.record.state); });
    try {
      expect(await (await producer.send(sig)).get({ timeout: 5_000 })).toBe(5);
      await until(() => states.includes('SUCCESS')); // a STARTED sent would have been pushed before it
    } finally {
      unwatch();
    }
    expect(states).not.toContain('STARTED');
  });
});

describe('TLS', () => {
  const hasOpenssl = (() => { try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
  it.skipIf(!hasOpenssl)('serves and connects over TLS with a self-signed certificate (skipped without openssl)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
      const key = readFileSync(join(dir, 'key.pem'));
      const cert = readFileSync(join(dir, 'cert.pem'));
      const server = new BrokerServer({ port: 0, tls: { key, cert }, token: 't' });
      await server.listen();
      const { port } = server.address();
      const app = new App({ transport: new TcpTransport({ port, token: 't', tls: { ca: cert, servername: 'localhost' } }) });
      app.task('add', (a: number, b: number) => a + b);
      await app.worker().start();
      expect(await (await app.send(signature('add', [20, 22]))).get({ timeout: 5_000 })).toBe(42);
      const untrusting = new TcpTransport({ port, token: 't', tls: {}, sendTimeout: 300, connectTimeout: 200 });
      await expect(untrusting.connect()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
      await app.close();
      await server.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
