// millwright's task module for bench/pool.mjs: the shared bodies, plus echoT
// which hands the reply buffer back with move() (transfer, no copy).
import { move } from '../../dist/src/pool/move.js';
import { echo } from './pool-tasks.mjs';

export { inc, fib, echo } from './pool-tasks.mjs';

export function echoT(buf) {
  return move(echo(buf));
}
