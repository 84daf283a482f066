import { describe, expect, it } from 'vitest';
import { ExecError, run } from './exec.ts';

describe('run', () => {
  it('feeds stdin and collects stdout and stderr', async () => {
    expect(await run('sh', ['-c', 'cat; echo err >&2'], { input: 'hello' })).toEqual({ stdout: 'hello', stderr: 'err\n' });
  });
  it('throws an execa-shaped error on a non-zero exit', async () => {
    const err = await run('sh', ['-c', 'echo boom >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecError);
    expect(err).toMatchObject({ code: 'EXEC_FAILED', exitCode: 3, stderr: 'boom\n', command: "sh -c 'echo boom >&2; exit 3'" });
    expect((err as ExecError).shortMessage).toBe("Command failed with exit code 3: sh -c 'echo boom >&2; exit 3'");
  });
  it('distinguishes a missing binary and a timeout', async () => {
    await expect(run('/nonexistent/tool', [])).rejects.toMatchObject({ code: 'EXEC_NOT_FOUND' });
    await expect(run('sleep', ['5'], { timeoutMs: 50 })).rejects.toMatchObject({ code: 'EXEC_TIMEOUT' });
  });
});
