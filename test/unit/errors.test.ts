import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../../src/index.js';
import { ERROR_CODES, fromErrorInfo, MillwrightError, TaskFailedError, toErrorInfo } from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \| `(\w+)` \|/gm)].map((m) => ({ code: m[1] as string, cls: m[2] as string }));

describe('error catalog', () => {
  it('docs/errors.md lists exactly the codes of src/errors.ts', () => {
    expect(rows.map((r) => r.code).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('each documented class is exported, a MillwrightError, and carries its code', () => {
    const exported = api as unknown as Record<string, unknown>;
    for (const { code, cls } of rows) {
      const C = exported[cls];
      expect(typeof C, cls).toBe('function');
      expect((C as { prototype: unknown }).prototype instanceof MillwrightError, cls).toBe(true);
    }
    expect(new api.QueueFullError('x').code).toBe('ERR_QUEUE_FULL');
    expect(new api.PermanentError('x').code).toBe('ERR_PERMANENT');
    expect(MillwrightError.is(new api.ClosedError('x'))).toBe(true);
    expect(MillwrightError.is(new Error('x'))).toBe(false);
  });

  it('errors cross boundaries as plain info and are rebuilt by code with the remote stack', () => {
    const original = new api.TimeoutError('too slow', 50);
    const info = JSON.parse(JSON.stringify(toErrorInfo(original))) as ReturnType<typeof toErrorInfo>;
    const rebuilt = fromErrorInfo(info);
    expect(rebuilt).toBeInstanceOf(api.TimeoutError);
    expect((rebuilt as api.TimeoutError).timeoutMs).toBe(50);
    expect(rebuilt.stack).toBe(original.stack);
    const plain = fromErrorInfo(toErrorInfo(new TypeError('bad type')));
    expect(plain.message).toBe('bad type');
    expect(plain.name).toBe('TypeError');
    expect(toErrorInfo('just a string')).toMatchObject({ code: 'ERR_TASK_FAILED', message: 'just a string' });
    const failed = new TaskFailedError({ code: 'ERR_X', name: 'Error', message: 'Test error', stack: 'remote' }, 'add', 'id-1');
    expect([failed.message, failed.taskName, failed.taskId, failed.remoteStack, failed.code]).toEqual(['Test error', 'add', 'id-1', 'remote', 'ERR_TASK_FAILED']);
  });
});
