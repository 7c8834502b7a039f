// The hand-written reference worker (as in the peers' harness): one
// MessagePort, no envelope, no task ids; the main side matches replies by
// per-port FIFO order. The physical limit of a message-per-task design.
import { workerData } from 'node:worker_threads';
import * as tasks from './pool-tasks.mjs';

const { port, fn } = workerData;
const f = tasks[fn === 'echoT' ? 'echo' : fn];

if (fn === 'echoT') {
  port.on('message', (b) => {
    const r = f(b);
    port.postMessage(r, [r]);
  });
} else {
  port.on('message', (x) => port.postMessage(f(x)));
}
