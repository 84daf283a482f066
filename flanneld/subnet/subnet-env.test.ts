import { mkdtemp, readFile, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../config.ts';
import { SubnetEnvError, parseSubnetEnv, readSubnetEnv, renderSubnetEnv, writeSubnetEnv } from './subnet-env.ts';
import type { Lease } from './types.ts';
import { IPPrefix } from '../../lib/ip/index.ts';

const dual = parseNetworkConfig(JSON.stringify({ Network: '10.244.0.0/16', EnableIPv6: true, IPv6Network: '2001:db8:42::/56' }));
const v4 = parseNetworkConfig(JSON.stringify({ Network: '10.244.0.0/16' }));
const v6 = parseNetworkConfig(JSON.stringify({ EnableIPv4: false, EnableIPv6: true, IPv6Network: '2001:db8:42::/56' }));
const lease: Lease = { enableIPv4: true, enableIPv6: true, subnet: IPPrefix.mustParse('10.244.1.0/24'), ipv6Subnet: IPPrefix.mustParse('2001:db8:42:1::/64'), attrs: {} };

describe('renderSubnetEnv', () => {
  it('writes upstream keys in upstream order with the first usable IP', () => {
    expect(renderSubnetEnv({ config: dual, lease, mtu: 1450, ipMasq: true })).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=2001:db8:42::/56\nFLANNEL_IPV6_SUBNET=2001:db8:42:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
    expect(renderSubnetEnv({ config: v4, lease, mtu: 1500, ipMasq: false })).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n',
    );
    expect(renderSubnetEnv({ config: v6, lease, mtu: 1430, ipMasq: false })).toBe(
      'FLANNEL_IPV6_NETWORK=2001:db8:42::/56\nFLANNEL_IPV6_SUBNET=2001:db8:42:1::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n',
    );
  });
  it('refuses a lease missing an enabled family', () => {
    expect(() => renderSubnetEnv({ config: dual, lease: { ...lease, ipv6Subnet: undefined } as unknown as Lease, mtu: 1, ipMasq: false })).toThrow(SubnetEnvError);
  });
});

describe('parseSubnetEnv', () => {
  it('round-trips the rendered file', () => {
    const env = parseSubnetEnv(renderSubnetEnv({ config: dual, lease, mtu: 1450, ipMasq: true }));
    expect(env.network?.toString()).toBe('10.244.0.0/16');
    expect(env.subnet?.toString()).toBe('10.244.1.1/24');
    expect(env.subnet?.masked().toString()).toBe('10.244.1.0/24');
    expect(env.ipv6Subnet?.masked().toString()).toBe('2001:db8:42:1::/64');
    expect(env.mtu).toBe(1450);
    expect(env.ipMasq).toBe(true);
  });
  it('ignores unknown keys, rejects bad values', () => {
    expect(parseSubnetEnv('# c\nFOO=bar\n\nFLANNEL_IPMASQ=false\n')).toEqual({ ipMasq: false });
    expect(() => parseSubnetEnv('FLANNEL_SUBNET=nope\n')).toThrow(SubnetEnvError);
    expect(() => parseSubnetEnv('FLANNEL_MTU=-1\n')).toThrow(SubnetEnvError);
  });
  it('uses the CNI plugin\'s grammar (lib/subnet-env): first item of a network list, no trimming', () => {
    expect(parseSubnetEnv('FLANNEL_NETWORK=10.1.0.0/16,10.2.0.0/16\n').network?.toString()).toBe('10.1.0.0/16');
    expect(() => parseSubnetEnv('FLANNEL_NETWORK=10.1.0.0/16,bad\n')).toThrow('invalid CIDR address: bad');
    expect(() => parseSubnetEnv('FLANNEL_MTU= 1450\n')).toThrow(SubnetEnvError);
  });
});

describe('writeSubnetEnv / readSubnetEnv', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'subnet-env-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the directory 0755 and the file 0644, leaving no temp files', async () => {
    const path = join(dir, 'run', 'flannel', 'subnet.env');
    expect(await readSubnetEnv(path)).toBeUndefined();
    await writeSubnetEnv(path, { config: v4, lease, mtu: 1450, ipMasq: true });
    expect(await readFile(path, 'utf8')).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect((await stat(join(dir, 'run', 'flannel'))).mode & 0o777).toBe(0o755);
    expect(await readdir(join(dir, 'run', 'flannel'))).toEqual(['subnet.env']);
    expect((await readSubnetEnv(path))?.subnet?.toString()).toBe('10.244.1.1/24');
  });

  it('replaces an existing file and keeps its permissions', async () => {
    const path = join(dir, 'subnet.env');
    await writeFile(path, 'FLANNEL_MTU=1\n');
    await chmod(path, 0o600);
    await writeSubnetEnv(path, { config: v4, lease, mtu: 1400, ipMasq: false });
    expect((await readSubnetEnv(path))?.mtu).toBe(1400);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('a failed write is a SubnetEnvError naming the file', async () => {
    // a parent that is a regular file: the directory cannot be created
    await writeFile(join(dir, 'file'), '');
    const path = join(dir, 'file', 'subnet.env');
    const write = writeSubnetEnv(path, { config: v4, lease, mtu: 1400, ipMasq: false });
    await expect(write).rejects.toThrow(SubnetEnvError);
    await expect(write).rejects.toThrow(`failed to write ${path}: EEXIST: file already exists, mkdir`);
  });
});
