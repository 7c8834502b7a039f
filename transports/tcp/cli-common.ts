/**
 * What the CLI commands share: the token file, a first dial that fails fast
 * on a refused connection, loading a `--tasks` module, and signal handling.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createSecureContext } from 'node:tls';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App } from '../../src/app.js';
import { MillwrightError } from '../../src/errors.js';
import { UsageError, type Address, type ParsedArgs } from './cli-args.js';
import { TcpTransport, type TcpTransportOptions } from './client.js';
import type { BrokerServerOptions } from './server.js';

/** A runtime failure (not a usage error): the CLI prints the message and exits 1. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
}

/** Writes one line to stdout. */
export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Reads `--token-file`: its content without trailing whitespace. */
export function readToken(file: string | undefined, command: string): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`Expected \`--token-file\` to name a readable file, got \`${file}\` (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, command);
  }
  const token = text.replace(/\s+$/, '');
  if (token === '') throw new UsageError(`Expected \`--token-file\` to hold a non-empty token, got the empty file \`${file}\``, command);
  return token;
}

/**
 * One plain TCP dial before the transport takes over: the transport retries a
 * refused connection with backoff (right for a broker that restarts), but a
 * CLI started against nothing should say so at once.
 */
export function probe({ host, port }: Address, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect({ host, port });
    const fail = (reason: string): void => {
      socket.destroy();
      reject(new CliFailure(`Cannot connect to the broker at ${host}:${port}: ${reason}. Is \`millwright broker\` running there?`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => { socket.destroy(); resolvePromise(); });
    socket.once('error', (err: NodeJS.ErrnoException) => fail(err.code === 'ECONNREFUSED' ? 'connection refused' : err.message));
  });
}

/**
 * Reads a PEM file named by a `--tls-*` flag, checking that it holds a certificate (`--tls-cert`, `--tls-ca`) or a
 * private key (`--tls-key`): node:tls silently ignores a CA file without one (every certificate is then untrusted).
 */
function readPem(file: string, flag: string, command: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new UsageError(`Expected \`--${flag}\` to name a readable PEM file, got \`${file}\` (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, command);
  }
  const what = flag === 'tls-key' ? 'a private key' : 'a certificate';
  const marker = flag === 'tls-key' ? /-----BEGIN [A-Z ]*PRIVATE KEY-----/ : /-----BEGIN (TRUSTED )?CERTIFICATE-----/;
  if (!marker.test(pem.toString('latin1'))) throw new UsageError(`Expected \`--${flag}\` to name a PEM file holding ${what}, got \`${file}\` (no such PEM block)`, command);
  return pem;
}

/** Checks that `--tls-cert` and `--tls-key` are a pair (node:tls would fail later with a bare OpenSSL message). */
function checkPair(cert: Buffer, key: Buffer, command: string): void {
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new UsageError(`Expected \`--tls-cert\` and \`--tls-key\` to be a certificate and its private key, got a pair node:tls refuses (${(err as Error).message})`, command);
  }
}

/** The broker's TLS material from `--tls-cert`, `--tls-key` and `--tls-ca` (client certificates required); undefined without TLS. */
export function serverTls(args: ParsedArgs): BrokerServerOptions['tls'] {
  const cert = args.string('tls-cert');
  const key = args.string('tls-key');
  const ca = args.string('tls-ca');
  if (cert === undefined && key === undefined && ca === undefined) return undefined;
  if (cert === undefined || key === undefined) throw new UsageError('Expected `--tls-cert` and `--tls-key` together (the broker\'s certificate and its private key)', 'broker');
  const pair = { cert: readPem(cert, 'tls-cert', 'broker'), key: readPem(key, 'tls-key', 'broker') };
  checkPair(pair.cert, pair.key, 'broker');
  return { ...pair, ...(ca === undefined ? {} : { ca: readPem(ca, 'tls-ca', 'broker') }) };
}

/**
 * A client's TLS options from `--tls` (system CAs), `--tls-ca` (trust this CA or self-signed certificate),
 * `--tls-cert`/`--tls-key` (a client certificate) and `--tls-servername`; undefined without TLS.
 */
export function clientTls(args: ParsedArgs, command: string): TcpTransportOptions['tls'] {
  const ca = args.string('tls-ca');
  const cert = args.string('tls-cert');
  const key = args.string('tls-key');
  const servername = args.string('tls-servername');
  if (!args.flag('tls') && ca === undefined && cert === undefined && key === undefined && servername === undefined) return undefined;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('Expected `--tls-cert` and `--tls-key` together (a client certificate and its private key)', command);
  const pair = cert === undefined || key === undefined ? undefined : { cert: readPem(cert, 'tls-cert', command), key: readPem(key, 'tls-key', command) };
  if (pair !== undefined) checkPair(pair.cert, pair.key, command);
  return {
    ...(ca === undefined ? {} : { ca: readPem(ca, 'tls-ca', command) }),
    ...pair,
    ...(servername === undefined ? {} : { servername }),
  };
}

/** Dials the broker and completes the handshake (so a wrong token fails here, with ERR_AUTH). */
export async function openTransport(address: Address, token: string | undefined, tls?: TcpTransportOptions['tls']): Promise<TcpTransport> {
  await probe(address);
  const transport = new TcpTransport({ host: address.host, port: address.port, ...(token === undefined ? {} : { token }), ...(tls === undefined ? {} : { tls }) });
  try {
    await transport.connect();
  } catch (err) {
    await transport.close();
    throw err;
  }
  return transport;
}

/** Imports a `--tasks` module and calls its default export with the app. */
export async function loadTasks(file: string, app: App, command: string): Promise<void> {
  const url = pathToFileURL(resolve(file)).href;
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(resolve(file))) {
      throw new UsageError(`Expected \`--tasks\` to name an ES module file, got \`${file}\` (not found)`, command);
    }
    throw new CliFailure(`The tasks module \`${file}\` failed to load: ${(err as Error).message}`);
  }
  if (typeof mod.default !== 'function') {
    throw new UsageError(`Expected \`--tasks\` to name a module whose default export is a function (app) => void, got \`${file}\` (default export: ${typeof mod.default})`, command);
  }
  await (mod.default as (app: App) => unknown)(app);
}

/**
 * Runs `stop` on the first SIGINT or SIGTERM; a second signal exits at once
 * with code 1 (the broker redelivers whatever a worker held).
 */
export function onStopSignal(what: string, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`millwright ${what}: second ${signal}, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop(signal).then(() => exitNow(), (err: unknown) => { reportError(err); exitNow(); });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/**
 * Exits with `process.exitCode` once stdout and stderr are flushed. Called
 * when a command is done (everything it opened is closed), so that a stray
 * timer cannot keep the process alive: TcpTransport's connect deadline
 * (`sendTimeout`, 30 s) stays armed after a successful connect.
 */
export function exitNow(): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit()));
}

/** Prints an error the way the CLI does, sets the exit code (2 for usage errors, 1 otherwise). */
export function reportError(err: unknown): void {
  if (err instanceof UsageError) {
    process.stderr.write(`millwright: ${err.message}\nRun \`millwright ${err.command === undefined ? '' : `${err.command} `}--help\` for usage.\n`);
    process.exitCode = 2;
    return;
  }
  const code = MillwrightError.is(err) ? ` (${err.code})` : '';
  process.stderr.write(`millwright: ${err instanceof Error ? err.message : String(err)}${code}\n`);
  process.exitCode = 1;
}
