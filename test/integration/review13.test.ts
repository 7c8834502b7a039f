/**
 * Thirteenth review: the CLI as an operator uses it. A closed stdout (`millwright status | head -1`) must not
 * crash the command with an unhandled EPIPE stack trace; a task name or ARGS_JSON that no task can take is a
 * bad command line (exit 2, naming the argument), checked before dialling the broker.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, closedPort, runCli, startBroker, startCli } from './cli-harness.js';

afterEach(cleanup);

describe('a closed stdout', () => {
  it('status whose reader went away (`| head -1`) exits 0 without an EPIPE stack trace', async () => {
    const { address } = await startBroker();
    const status = startCli(['status', '--connect', address, '--interval', '0']);
    // The read end closes before the child has even started: each of its writes meets EPIPE.
    status.proc.stdout?.destroy();
    const code = await status.exited;
    expect(status.stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('send arguments no task can take exit 2, before connecting', () => {
  const cases: Array<[string, string[], string]> = [
    ['an empty task name', ['', '[1,2]'], 'Expected `NAME` to be a task name (a non-empty string), got ``'],
    ['a number JSON cannot hold', ['add', '[1e400]'], 'Expected `ARGS_JSON` to hold values a task can take, got `[1e400]` (Invalid value at ARGS_JSON[0]'],
    ['a reserved key', ['add', '[{"\\u0000b":0}]'], 'Expected `ARGS_JSON` to hold values a task can take'],
  ];
  it.each(cases)('%s', async (_title, positionals, message) => {
    // Nothing listens there: a usage error must win over "connection refused".
    const address = `127.0.0.1:${await closedPort()}`;
    const { code, stdout, stderr } = await runCli(['send', '--connect', address, ...positionals]);
    expect(code, stderr).toBe(2);
    expect(stdout).toBe('');
    const [first, hint] = stderr.trimEnd().split('\n');
    expect(first).toContain(message);
    expect(hint).toBe('Run `millwright send --help` for usage.');
  });
});
