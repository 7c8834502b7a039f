/**
 * Sixth review: TLS with client certificates (CLI end to end, and what a client without one is told), and
 * the checks on the PEM files the CLI's --tls-* flags name. Certificates are made with openssl in a temp dir (skipped without it).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, closedPort, runCli, startBroker, startWorker, tempDir } from './cli-harness.js';

afterEach(cleanup);

const hasOpenssl = (() => { try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; } })();

interface Pki { dir: string; ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }

/** A CA, a broker certificate for 127.0.0.1 and a client certificate it signed. */
function makePki(): Pki {
  const dir = tempDir();
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'ignore', cwd: dir }); };
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=review6 CA');
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('san.ext'));
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=client');
  ssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.pem'), '-days', '1');
  return { dir, ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

describe.skipIf(!hasOpenssl)('mutual TLS (skipped without openssl)', () => {
  it('CLI: a broker with --tls-ca serves workers and clients that present a certificate its CA signed', async () => {
    const pki = makePki();
    const { broker, address } = await startBroker(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.ca]);
    expect(broker.output).toContain('over TLS');
    const mine = ['--tls-ca', pki.ca, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey];
    await startWorker(address, mine);
    expect(await runCli(['send', '--connect', address, 'add', '[20,22]', ...mine])).toEqual({ code: 0, stdout: '42', stderr: '' });
    const noCert = await runCli(['send', '--connect', address, 'add', '[1,2]', '--tls-ca', pki.ca]);
    expect(noCert.code, noCert.stderr).toBe(1);
    expect(noCert.stderr).toMatch(/TLS with the broker at 127\.0\.0\.1:\d+ failed: [\s\S]*CERTIFICATE_REQUIRED[\s\S]*refused this client's certificate[\s\S]*--tls-cert[\s\S]*\(ERR_CONNECTION\)/);
  });
});

describe.skipIf(!hasOpenssl)('CLI --tls-* files that are not the PEM they should be (skipped without openssl)', () => {
  it('exit 2 naming the flag, instead of exit 1 with a bare OpenSSL message ("PEM routines::no start line")', async () => {
    const pki = makePki();
    const junk = join(pki.dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    const address = `127.0.0.1:${await closedPort()}`;
    const badCa = await runCli(['send', '--connect', address, 'add', '[1,2]', '--tls-ca', junk]);
    expect(badCa.code, badCa.stderr).toBe(2);
    expect(badCa.stderr).toContain('`--tls-ca`');
    const swapped = await runCli(['send', '--connect', address, 'add', '[1,2]', '--tls-cert', pki.clientKey, '--tls-key', pki.clientCert]);
    expect(swapped.code, swapped.stderr).toBe(2);
    expect(swapped.stderr).toContain('`--tls-cert`');
    const mismatch = await runCli(['broker', '--port', '0', '--tls-cert', pki.serverCert, '--tls-key', pki.clientKey]);
    expect(mismatch.code, mismatch.stderr).toBe(2);
    expect(mismatch.stderr).toContain('`--tls-key`');
    const brokerBadCa = await runCli(['broker', '--port', '0', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', junk]);
    expect(brokerBadCa.code, brokerBadCa.stderr).toBe(2);
    expect(brokerBadCa.stderr).toContain('`--tls-ca`');
  });
});
