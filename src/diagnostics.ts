/**
 * `node:diagnostics_channel` channels, for tracing and metrics without
 * touching the code that runs tasks (the way undici publishes its requests).
 * Nothing is built or published while a channel has no subscriber.
 *
 * | channel                        | message                                         |
 * |--------------------------------|-------------------------------------------------|
 * | `millwright:app:sent`          | `{ ids: string[] }` every task id of the workflow sent (links and callbacks included) |
 * | `millwright:task:started`      | `{ id, name, attempt }`                         |
 * | `millwright:task:succeeded`    | `{ id, name, attempt, result }`                 |
 * | `millwright:task:failed`       | `{ id, name, attempt, error }` (final)          |
 * | `millwright:task:retry`        | `{ id, name, attempt, error, delay }`           |
 *
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe('millwright:task:failed', (m) => metrics.increment('failed', { task: m.name }));
 */
import { channel } from 'node:diagnostics_channel';

export const channels = {
  sent: channel('millwright:app:sent'),
  started: channel('millwright:task:started'),
  succeeded: channel('millwright:task:succeeded'),
  failed: channel('millwright:task:failed'),
  retry: channel('millwright:task:retry'),
} as const;
