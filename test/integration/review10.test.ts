/** Review 10: values across the transports (in-memory and TCP) round-trip alike. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packArgs, unpackArgs } from '../../src/codec.js';
import { App, chain, chord, group, signature } from '../../src/index.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import type { Delivery } from '../../src/transport.js';
import { taskMessage, until } from './tcp-helpers.js';

let server: BrokerServer;
const apps: App[] = [];

function register(app: App): void {
  app.task('echo', (...xs: unknown[]) => xs);
  app.task('deep', () => { let v: unknown = 0; for (let i = 0; i < 101; i++) v = [v]; return v; });
  app.task('bytes', () => ({ a: new Uint8Array([1, 2]), b: [new Uint8Array(0)] }));
  app.task('badResult', () => ({ when: new Date(0) }));
  /** Each argument described: bytes as a list of numbers, anything else as its JSON. */
  app.task('describe', (...xs: unknown[]) => xs.map((x) => (x instanceof Uint8Array ? [...x] : JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v)))));
}

const modes: Array<[string, () => App]> = [];

beforeAll(async () => {
  server = new BrokerServer({ port: 0, host: '127.0.0.1' });
  await server.listen();
  const { port } = server.address();
  const mem = new App();
  register(mem);
  await mem.worker({ concurrency: 4 }).start();
  const producer = new App({ transport: new TcpTransport({ port, host: '127.0.0.1' }) });
  const workerApp = new App({ transport: new TcpTransport({ port, host: '127.0.0.1' }) });
  register(producer);
  register(workerApp);
  await workerApp.worker({ concurrency: 4 }).start();
  apps.push(mem, producer, workerApp);
  modes.push(['memory', () => mem], ['tcp', () => producer]);
});

afterAll(async () => {
  for (const a of apps) await a.close();
  await server.close();
});

describe.each([['memory', 0], ['tcp', 1]] as const)('review 10 (%s)', (_mode, i) => {
  const app = (): App => (modes[i] as [string, () => App])[1]();

  it('round-trips awkward values', async () => {
    const shared = new Uint8Array([7, 8]);
    const big = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const view = new Uint8Array(big.buffer, 3, 4);
    const odd = JSON.parse('{"__proto__": {"x": 1}, "constructor": 2, "1": 3, "a\\u0000b": 4, "": 5}') as unknown;
    const args = [shared, [shared, { s: shared }], new Uint8Array(0), Buffer.from('hey'), view, -0, 1e308, 5e-324,
      'lone \ud800 sur\udc00 nul \u0000', odd, { k: [[[new Uint8Array([9])]]] }];
    const out = await (await app().send(signature('echo', args))).get({ timeout: 5_000 }) as unknown[];
    expect(out).toEqual([new Uint8Array([7, 8]), [new Uint8Array([7, 8]), { s: new Uint8Array([7, 8]) }], new Uint8Array(0),
      new Uint8Array([104, 101, 121]), new Uint8Array([3, 4, 5, 6]), 0, 1e308, 5e-324, 'lone \ud800 sur\udc00 nul \u0000', odd,
      { k: [[[new Uint8Array([9])]]] }]);
    expect(Object.getPrototypeOf(out[9])).toBe(Object.prototype);
    expect(Object.keys(out[9] as object)).toEqual(Object.keys(odd as object));
  });

  it('appends binary results in a chain and a chord, undefined as null', async () => {
    const c = await app().send(chain(signature('bytes'), signature('echo', [new Uint8Array([5])])));
    expect(await c.get({ timeout: 5_000 })).toEqual([new Uint8Array([5]), { a: new Uint8Array([1, 2]), b: [new Uint8Array(0)] }]);
    const d = await app().send(chord(group(signature('bytes'), signature('echo', [new Uint8Array([3])])), signature('echo', ['x'])));
    expect(await d.get({ timeout: 5_000 })).toEqual(['x', { a: new Uint8Array([1, 2]), b: [new Uint8Array(0)] }, [new Uint8Array([3])]]);
  });

  it('rejects bad values at send time naming the path, and fails a task whose result is not a value', async () => {
    await expect(app().send(signature('echo', [1, { user: { fn: () => 1 } }]))).rejects.toThrow(/args\[1\]\.user\.fn/);
    await expect((await app().send(signature('badResult'))).get({ timeout: 5_000 })).rejects.toThrow(/result\.when: a Date instance/);
  });

  it('a chain passes a result nested at the limit to a link with binary args', async () => {
    // Before the fix the link's args were re-validated when the result was appended: one level deeper, they
    // failed, the exception escaped the worker's settle, and the chain hung (no SUCCESS, no FAILURE).
    const r = await app().send(chain(signature('deep'), signature('describe', [new Uint8Array([1])])));
    expect(await r.get({ timeout: 5_000 })).toEqual([[1], `${'['.repeat(101)}0${']'.repeat(101)}`]);
  });

  it('a chord passes a result nested at the limit beside a binary one (appended by the broker)', async () => {
    const r = await app().send(chord(group(signature('deep'), signature('bytes')), signature('describe', [])));
    expect(await r.get({ timeout: 5_000 })).toEqual([`${'['.repeat(101)}0${']'.repeat(101)}`, '{"a":[1,2],"b":[[]]}']);
  });
});

describe('review 10: a malformed packed value from a client', () => {
  it('a chord result whose JSON does not parse still releases the callback (before: the broker threw while appending, the chord closed, the callback was lost)', async () => {
    const broker = new BrokerServer({ port: 0, host: '127.0.0.1' });
    await broker.listen();
    const client = new TcpTransport({ port: broker.address().port, host: '127.0.0.1' });
    try {
      const queue = 'r10-chord';
      const chordRef = { id: 'r10-c', index: 0, tail: ['r10-cb'] };
      const member = taskMessage(queue, { id: 'r10-m', chord: chordRef });
      const callback = taskMessage(queue, { id: 'r10-cb', args: packArgs([new Uint8Array([1])]) });
      await client.publish({ tasks: [member], chords: [{ id: 'r10-c', count: 1, callback: { tasks: [callback], chords: [] } }] });
      const delivered: Delivery[] = [];
      await client.consume({ queues: [queue], prefetch: 2, names: null }, { deliver: (d) => { delivered.push(d); }, revoked: () => undefined });
      await until(() => delivered.length === 1);
      await client.settle((delivered[0] as Delivery).tag, {
        records: [{ id: member.id, name: 't', state: 'SUCCESS', result: '1', attempts: 1, createdAt: 1, updatedAt: 2 }],
        publish: null, retry: null, chord: { ref: chordRef, result: { json: '{', bins: [new Uint8Array([2])] } },
      });
      await until(() => delivered.length === 2);
      const cb = (delivered[1] as Delivery).message;
      expect(cb.id).toBe('r10-cb');
      // Not a value: a worker fails the callback when it unpacks its args (a FAILURE with the reason, not a loss).
      expect(() => unpackArgs(cb.args)).toThrow(SyntaxError);
    } finally {
      await client.close();
      await broker.close();
    }
  });
});
