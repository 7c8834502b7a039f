#!/usr/bin/env node
/**
 * The `millwright` command: a broker, workers, and two client commands.
 *
 *   millwright broker --port 7400 [--host 127.0.0.1] [--token-file F] [--data-dir D] [--max-frame-bytes N] [--tls-cert F --tls-key F [--tls-ca F]]
 *   (worker, send and status take [--tls] [--tls-ca F] [--tls-cert F --tls-key F] [--tls-servername NAME])
 *   millwright worker --connect host:7400 --tasks ./dist/tasks.js [--concurrency N] [--threads N] [--queues a,b] [--prefetch N]
 *   millwright send   --connect host:7400 NAME [ARGS_JSON] [--queue Q] [--timeout MS] [--no-wait]
 *   millwright status --connect host:7400 [--json] [--interval MS]
 *
 * Exit codes: 0 success (and after a graceful stop on SIGINT/SIGTERM),
 * 1 runtime failure (connection refused, wrong token, failed task),
 * 2 bad command line (the message names the flag and what it expects).
 */
import { App } from '../../src/app.js';
import { commandHelp, parseArgs, UsageError, type CommandSpec, type FlagSpec, type ParsedArgs } from './cli-args.js';
import { send, status } from './cli-client.js';
import { clientTls, exitNow, loadTasks, onStopSignal, openTransport, readToken, reportError, say, serverTls } from './cli-common.js';
import { BrokerServer } from './server.js';

const connect: FlagSpec = { kind: 'address', value: 'HOST:PORT', help: 'address of the broker', required: true };
const tokenFile: FlagSpec = { kind: 'string', value: 'FILE', help: 'file holding the broker\'s token (trailing whitespace ignored)' };
/** A client's TLS flags (worker, send, status). */
const clientTlsFlags: Readonly<Record<string, FlagSpec>> = {
  tls: { kind: 'boolean', help: 'connect over TLS, trusting the system\'s CAs (implied by the other --tls-* flags)' },
  'tls-ca': { kind: 'string', value: 'FILE', help: 'PEM of the CA (or the self-signed certificate) to trust for the broker\'s certificate' },
  'tls-cert': { kind: 'string', value: 'FILE', help: 'PEM client certificate, for a broker started with --tls-ca (with --tls-key)' },
  'tls-key': { kind: 'string', value: 'FILE', help: 'PEM private key of --tls-cert' },
  'tls-servername': { kind: 'string', value: 'NAME', help: 'name the broker\'s certificate must carry (default: the host of --connect)' },
};

const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  broker: {
    name: 'broker',
    brief: 'run a broker (queues, results, workflows)',
    summary: 'Runs a broker: queues, results and workflows for producers and workers. Prints "millwright broker listening on HOST:PORT" once it listens; SIGINT/SIGTERM close it (flushing the journal) and exit 0. Without --data-dir everything is in memory only.',
    flags: {
      port: { kind: 'int', min: 0, max: 65535, value: 'N', help: 'port to listen on; 0 picks a free one (default 7400)' },
      host: { kind: 'string', value: 'HOST', help: 'interface to bind (default 127.0.0.1, loopback only)' },
      'token-file': tokenFile,
      'data-dir': { kind: 'string', value: 'DIR', help: 'journal directory: with it, a restart loses no confirmed task or result' },
      'max-frame-bytes': { kind: 'int', min: 64, value: 'N', help: 'largest accepted frame, bytes (default 16 MiB)' },
      'tls-cert': { kind: 'string', value: 'FILE', help: 'PEM certificate: serve TLS (with --tls-key)' },
      'tls-key': { kind: 'string', value: 'FILE', help: 'PEM private key of --tls-cert' },
      'tls-ca': { kind: 'string', value: 'FILE', help: 'PEM CA: require client certificates it signed' },
    },
    examples: [
      'millwright broker --port 7400 --data-dir ./broker-data --token-file ./token',
      'millwright broker --host 0.0.0.0 --token-file ./token --tls-cert cert.pem --tls-key key.pem',
    ],
  },
  worker: {
    name: 'worker',
    brief: 'run a worker for the tasks of a module',
    summary: 'Runs a worker: imports --tasks (its default export (app) => void registers the tasks), consumes its queues and prints a ready line. SIGINT/SIGTERM stop it gracefully: running tasks finish (or, past --stop-timeout, are handed back), then it exits 0.',
    flags: {
      connect,
      tasks: { kind: 'string', value: 'FILE', help: 'ES module whose default export registers the tasks', required: true },
      concurrency: { kind: 'int', min: 1, value: 'N', help: 'tasks run at once (default 10)' },
      threads: { kind: 'int', min: 1, max: 1024, value: 'N', help: 'thread pool size for module tasks (default: cores)' },
      queues: { kind: 'list', value: 'A,B', help: 'queues to consume (default: default)' },
      prefetch: { kind: 'int', min: 0, value: 'N', help: 'deliveries held ahead of execution (default 0)' },
      'stop-timeout': { kind: 'int', min: 0, value: 'MS', help: 'on SIGINT/SIGTERM, ms to let running tasks finish before handing them back (default 10000)' },
      'results-expire-in': { kind: 'int', min: 1, value: 'MS', help: 'ms the broker keeps the state and result of a task this worker finished (default 86400000, 24 h; ~290 bytes each)' },
      'token-file': tokenFile,
      ...clientTlsFlags,
    },
    examples: ['millwright worker --connect 127.0.0.1:7400 --tasks ./dist/examples/tasks.js --concurrency 20'],
  },
  send: {
    name: 'send',
    brief: 'send one task and print its result as JSON',
    usage: 'NAME [ARGS_JSON]',
    positionals: { min: 1, max: 2 },
    summary: 'Sends one task and prints its result as JSON (exit 0). A failed task prints its error message to stderr and exits 1. ARGS_JSON is a JSON array of arguments (default []).',
    flags: {
      connect,
      queue: { kind: 'string', value: 'Q', help: 'queue to send to (default: the task\'s queue, else default)' },
      timeout: { kind: 'int', min: 1, value: 'MS', help: 'give up waiting for the result after MS ms (exit 1; the task stays queued)' },
      'no-wait': { kind: 'boolean', help: 'print the task id and exit without waiting for the result' },
      tasks: { kind: 'string', value: 'FILE', help: 'tasks module, to apply the tasks\' default options (queue, retries...)' },
      'token-file': tokenFile,
      ...clientTlsFlags,
    },
    examples: ['millwright send --connect 127.0.0.1:7400 add \'[1,2]\'          # prints 3'],
  },
  status: {
    name: 'status',
    brief: 'show queues, depths, tasks in flight, consumers, rates',
    summary: 'Shows the broker\'s queues: ready tasks, tasks in flight (delivered, not acked), consumers, and the change of ready per second between two samples --interval ms apart.',
    flags: {
      connect,
      json: { kind: 'boolean', help: 'print one JSON object instead of a table' },
      interval: { kind: 'int', min: 0, value: 'MS', help: 'ms between the two samples for rates; 0 takes one sample (default 1000)' },
      'token-file': tokenFile,
      ...clientTlsFlags,
    },
  },
};

const RUN: Readonly<Record<string, (args: ParsedArgs) => Promise<void>>> = { broker, worker, send, status };

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'Usage: millwright <command> [flags]',
    '',
    'Commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(width)}  ${c.brief}`),
    '',
    'Run `millwright <command> --help` for the flags of a command.',
    '',
  ].join('\n');
}

async function broker(args: ParsedArgs): Promise<void> {
  const token = readToken(args.string('token-file'), 'broker');
  const dataDir = args.string('data-dir');
  const maxFrameBytes = args.int('max-frame-bytes');
  const tls = serverTls(args);
  const server = new BrokerServer({
    host: args.string('host') ?? '127.0.0.1', port: args.int('port') ?? 7400,
    ...(token === undefined ? {} : { token }), ...(dataDir === undefined ? {} : { dataDir }),
    ...(maxFrameBytes === undefined ? {} : { maxFrameBytes }), ...(tls === undefined ? {} : { tls }),
  });
  await server.listen();
  const { host, port } = server.address();
  // Handlers before the line: whoever reads it may signal at once.
  onStopSignal('broker', async (signal) => {
    say(`millwright broker: ${signal}, closing`);
    await server.close();
    say('millwright broker closed');
  });
  say(`millwright broker listening on ${host.includes(':') ? `[${host}]` : host}:${port}${tls === undefined ? '' : ' over TLS'} (${dataDir === undefined ? 'in memory only' : `journal in ${dataDir}`})`);
}

async function worker(args: ParsedArgs): Promise<void> {
  const token = readToken(args.string('token-file'), 'worker');
  const address = args.address('connect');
  const transport = await openTransport(address, token, clientTls(args, 'worker'));
  const resultsExpireIn = args.int('results-expire-in');
  const app = new App({ transport, ...(resultsExpireIn === undefined ? {} : { resultsExpireIn }) });
  await loadTasks(args.string('tasks') as string, app, 'worker').catch(async (err: unknown) => { await app.close(); throw err; });
  const queues = args.list('queues');
  const concurrency = args.int('concurrency');
  const threads = args.int('threads');
  const prefetch = args.int('prefetch');
  const w = app.worker({
    ...(queues === undefined ? {} : { queues }), ...(concurrency === undefined ? {} : { concurrency }),
    ...(threads === undefined ? {} : { threads }), ...(prefetch === undefined ? {} : { prefetch }),
  });
  w.on('error', (err: Error) => process.stderr.write(`millwright worker: ${err.message}\n`));
  w.on('task:failed', (e: { name: string; id: string; error?: { message?: string } }) => {
    process.stderr.write(`millwright worker: task ${e.name} ${e.id} failed: ${e.error?.message ?? 'unknown error'}\n`);
  });
  await w.start();
  const stopTimeout = args.int('stop-timeout') ?? 10_000;
  // Handlers before the ready line: whoever reads it may signal at once.
  onStopSignal('worker', async (signal) => {
    say(`millwright worker: ${signal}, stopping: ${w.active} running task(s) get up to ${stopTimeout} ms to finish`);
    await w.stop({ graceful: true, timeout: stopTimeout });
    await app.close();
    say('millwright worker stopped');
  });
  say(`millwright worker ready: pid ${process.pid}, queues ${(queues ?? ['default']).join(',')}, concurrency ${concurrency ?? 10}, broker ${address.host}:${address.port}`);
}

/** Runs the command line; resolves once the command finished (broker and worker keep running until a signal). */
async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  // `millwright help send` is `millwright send --help`.
  if (command === 'help' && rest[0] !== undefined) {
    const spec = COMMANDS[rest[0]];
    if (spec === undefined) throw new UsageError(`Unknown command \`${rest[0]}\`: expected one of ${Object.keys(COMMANDS).map((c) => `\`${c}\``).join(', ')}`);
    process.stdout.write(commandHelp(spec));
    return;
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    if (command !== undefined) { process.stdout.write(topHelp()); return; }
    process.stderr.write(topHelp());
    process.exitCode = 2;
    return;
  }
  const spec = COMMANDS[command];
  const run = RUN[command];
  if (spec === undefined || run === undefined) {
    throw new UsageError(`Unknown command \`${command}\`: expected one of ${Object.keys(COMMANDS).map((c) => `\`${c}\``).join(', ')}`);
  }
  const args = parseArgs(spec, rest);
  if (args.help) { process.stdout.write(commandHelp(spec)); return; }
  await run(args);
  // broker and worker run on until a signal; a client command is done here.
  if (command === 'send' || command === 'status') exitNow();
}

// A reader that went away (`millwright status | head -1`) makes writes fail with EPIPE, which would crash the
// command with an unhandled 'error' stack trace (and a worker or broker with it): drop the output instead.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'EPIPE') throw err; });
}

main(process.argv.slice(2)).then(
  () => { if (process.exitCode !== undefined && process.exitCode !== 0) exitNow(); },
  (err: unknown) => { reportError(err); exitNow(); },
);
