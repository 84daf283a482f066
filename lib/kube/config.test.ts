import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestContext, HttpMethod } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { loadKubeConfig } from './config.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function kubeconfig(user: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'token'), 'file-token-1\n'.trim());
  writeFileSync(
    join(dir, 'kubeconfig.conf'),
    `apiVersion: v1
kind: Config
clusters:
- cluster: {server: 'https://192.0.2.1:6443', insecure-skip-tls-verify: true}
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
users:
- name: default
  user: ${user}
`,
  );
  return join(dir, 'kubeconfig.conf');
}

async function authorization(path: string): Promise<string | undefined> {
  const ctx = new RequestContext('https://192.0.2.1:6443/api/v1/nodes', HttpMethod.GET);
  await (await loadKubeConfig({ kubeconfig: path })).applySecurityAuthentication(ctx);
  return ctx.getHeaders()['Authorization'];
}

describe('loadKubeConfig', () => {
  it("sends a kubeconfig user's tokenFile as the bearer token (kubeadm's kube-proxy kubeconfig), relative to the file", async () => {
    expect(await authorization(kubeconfig('{tokenFile: token}'))).toBe('Bearer file-token-1');
  });
  it('lets a token beside the tokenFile win, as client-go does', async () => {
    expect(await authorization(kubeconfig('{token: inline, tokenFile: token}'))).toBe('Bearer inline');
  });
  it('names a missing tokenFile', async () => {
    const p = kubeconfig('{tokenFile: /nonexistent/token}');
    await expect(loadKubeConfig({ kubeconfig: p })).rejects.toThrow(/tokenFile \/nonexistent\/token does not exist/);
  });
});
