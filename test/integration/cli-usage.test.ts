/**
 * `millwright --help`, `<command> --help`, and the command-line errors:
 * exit 2 with one clear line naming the flag and what it expects, plus a
 * hint to run --help. Connection refused exits 1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, closedPort, runCli } from './cli-harness.js';

afterEach(cleanup);

const FLAGS: Record<string, readonly string[]> = {
  broker: ['--port', '--host', '--token-file', '--data-dir', '--max-frame-bytes'],
  worker: ['--connect', '--tasks', '--concurrency', '--threads', '--queues', '--prefetch', '--token-file', '--stop-timeout'],
  send: ['--connect', '--queue', '--timeout', '--token-file', '--no-wait'],
  status: ['--connect', '--token-file', '--json', '--interval'],
};

describe('millwright --help', () => {
  it('lists every command and exits 0', async () => {
    const { code, stdout, stderr } = await runCli(['--help']);
    expect(code, stderr).toBe(0);
    for (const command of Object.keys(FLAGS)) expect(stdout).toMatch(new RegExp(`^  ${command}\\s`, 'm'));
  });

  it('help COMMAND prints that command\'s help, as COMMAND --help does', async () => {
    const viaHelp = await runCli(['help', 'send']);
    expect(viaHelp).toEqual(await runCli(['send', '--help']));
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toContain('Usage: millwright send');
    const unknown = await runCli(['help', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown command `nope`');
  });

  it.each(Object.entries(FLAGS))('%s --help names its flags and exits 0', async (command, flags) => {
    const { code, stdout, stderr } = await runCli([command, '--help']);
    expect(code, stderr).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toContain(`Usage: millwright ${command}`);
    for (const flag of flags) expect(stdout).toMatch(new RegExp(`^  ${flag}\\b`, 'm'));
  });

  it('no command prints the help to stderr and exits 2', async () => {
    const { code, stderr } = await runCli([]);
    expect(code, stderr).toBe(2);
    expect(stderr).toContain('Usage: millwright <command>');
  });
});

describe('command-line errors exit 2 with a clear message', () => {
  const worker = ['worker', '--connect', '127.0.0.1:7400', '--tasks', 'tasks.js'];
  const cases: Array<[string, string[], string, string]> = [
    ['non-integer --concurrency', [...worker, '--concurrency', 'x'], 'Expected `--concurrency` to be an integer >= 1, got `x`', 'worker'],
    ['zero --concurrency', [...worker, '--concurrency=0'], 'Expected `--concurrency` to be an integer >= 1, got `0`', 'worker'],
    ['--threads out of range', [...worker, '--threads', '5000'], 'Expected `--threads` to be an integer in 1..1024, got `5000`', 'worker'],
    ['empty queue name', [...worker, '--queues', 'a,,b'], 'Expected `--queues` to be a comma-separated list of names', 'worker'],
    ['--connect without a port', ['send', '--connect', 'localhost', 'add'], 'Expected `--connect` to be host:port', 'send'],
    ['missing --connect', ['status'], 'Missing required flag `--connect`', 'status'],
    ['missing --tasks', ['worker', '--connect', '127.0.0.1:7400'], 'Missing required flag `--tasks`', 'worker'],
    ['--port out of range', ['broker', '--port', '70000'], 'Expected `--port` to be an integer in 0..65535, got `70000`', 'broker'],
    ['flag without its value', ['broker', '--port'], 'Expected `--port` to be followed by an integer in 0..65535, got nothing', 'broker'],
    ['unknown flag', ['status', '--connect', '127.0.0.1:7400', '--verbose'], 'Unknown flag `--verbose` for `millwright status`', 'status'],
    ['bad JSON args', ['send', '--connect', '127.0.0.1:7400', 'add', '[1,'], 'Expected `ARGS_JSON` to be a JSON array of arguments', 'send'],
    ['JSON args not an array', ['send', '--connect', '127.0.0.1:7400', 'add', '{"a":1}'], 'Expected `ARGS_JSON` to be a JSON array of arguments (e.g. \'[1,2]\'), got `{"a":1}`', 'send'],
    ['send without a task name', ['send', '--connect', '127.0.0.1:7400'], 'Missing argument for `millwright send`: expected NAME [ARGS_JSON]', 'send'],
    ['missing token file', ['status', '--connect', '127.0.0.1:7400', '--token-file', '/nonexistent/token'], 'Expected `--token-file` to name a readable file, got `/nonexistent/token` (ENOENT)', 'status'],
  ];

  it.each(cases)('%s', async (_title, args, message, command) => {
    const { code, stdout, stderr } = await runCli(args);
    expect(code, stderr).toBe(2);
    expect(stdout).toBe('');
    const [first, hint] = stderr.trimEnd().split('\n');
    expect(first).toContain(message);
    expect(first?.startsWith('millwright: ')).toBe(true);
    expect(hint).toBe(`Run \`millwright ${command} --help\` for usage.`);
  });

  it('an unknown command', async () => {
    const { code, stderr } = await runCli(['frobnicate', '--x']);
    expect(code, stderr).toBe(2);
    expect(stderr).toContain('Unknown command `frobnicate`: expected one of `broker`, `worker`, `send`, `status`');
    expect(stderr).toContain('Run `millwright --help` for usage.');
  });
});

describe('connection refused exits 1', () => {
  it.each([['send', 'add', '[1,2]'], ['status']])('%s', async (...args) => {
    const port = await closedPort();
    const { code, stdout, stderr } = await runCli([...args.slice(0, 1), '--connect', `127.0.0.1:${port}`, ...args.slice(1)]);
    expect(code, stderr).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim()).toBe(`millwright: Cannot connect to the broker at 127.0.0.1:${port}: connection refused. Is \`millwright broker\` running there?`);
  });
});
