// Tinypool's task module for bench/pool.mjs (loaded from $PEER_DIR, never a dependency).
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { echo } from './pool-tasks.mjs';

export { inc, fib, echo } from './pool-tasks.mjs';

const require = createRequire(path.join(process.env.PEER_DIR || '/tmp/peerpool', 'package.json'));
const { default: Tinypool } = await import(pathToFileURL(require.resolve('tinypool')).href);

export function echoT(buf) {
  return Tinypool.move(echo(buf));
}
