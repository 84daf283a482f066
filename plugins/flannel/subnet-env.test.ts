import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNotFound } from '../../lib/errors.ts';
import {
  loadFlannelSubnetEnv,
  parseFlannelSubnetEnv,
  SubnetEnvInvalidError,
  SubnetEnvNotFoundError,
} from './subnet-env.ts';

const F = '/run/flannel/subnet.env';
const strs = (l: readonly { toString(): string }[]): string[] => l.map((p) => p.toString());

describe('parseFlannelSubnetEnv', () => {
  test('IPv4 file as flanneld writes it: subnet loses its host bits', () => {
    const env = parseFlannelSubnetEnv(F, 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n');
    expect(strs(env.networks)).toEqual(['10.1.0.0/16']);
    expect(env.subnet?.toString()).toBe('10.1.17.0/24');
    expect(env.ipv6Networks).toEqual([]);
    expect(env.ipv6Subnet).toBeUndefined();
    expect(env.mtu).toBe(1472);
    expect(env.ipMasq).toBe(true);
  });

  test('IPv6 and dual stack', () => {
    const v6 = parseFlannelSubnetEnv(F, 'FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n');
    expect(strs(v6.ipv6Networks)).toEqual(['fc00::/48']);
    expect(v6.ipv6Subnet?.toString()).toBe('fc00::/64');
    expect(v6.subnet).toBeUndefined();
    expect(v6.ipMasq).toBe(false);
    const dual = parseFlannelSubnetEnv(
      F,
      'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00:0:0:11::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
    expect(dual.subnet?.toString()).toBe('10.1.17.0/24');
    expect(dual.ipv6Subnet?.toString()).toBe('fc00:0:0:11::/64');
    expect(dual.mtu).toBe(1450);
  });

  test('network lists are split on commas, masked and deduplicated in order', () => {
    const env = parseFlannelSubnetEnv(
      F,
      'FLANNEL_NETWORK=10.1.0.0/16,192.168.0.0/16,10.1.5.5/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n',
    );
    expect(strs(env.networks)).toEqual(['10.1.0.0/16', '192.168.0.0/16']);
  });

  test('CRLF line ends, unknown keys and a later duplicate key', () => {
    const env = parseFlannelSubnetEnv(
      F,
      'FOO=bar\r\nFLANNEL_NETWORK=10.1.0.0/16\r\nFLANNEL_SUBNET=10.1.17.1/24\r\nFLANNEL_SUBNET=10.1.18.1/24\r\nFLANNEL_MTU=1472\r\nFLANNEL_IPMASQ=TRUE\r\n',
    );
    expect(env.subnet?.toString()).toBe('10.1.18.0/24');
    // only the exact word "true" enables masquerading, as upstream
    expect(env.ipMasq).toBe(false);
  });

  test('missing keys are named like upstream', () => {
    expect(() => parseFlannelSubnetEnv(F, 'foo=bar')).toThrow(
      `${F} is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ`,
    );
    expect(() => parseFlannelSubnetEnv(F, 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n')).toThrow(
      `${F} is missing FLANNEL_MTU, FLANNEL_IPMASQ`,
    );
    expect(() => parseFlannelSubnetEnv(F, 'FLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1\nFLANNEL_IPMASQ=true')).toThrow(
      `${F} is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK`,
    );
  });

  test('bad values are errors with Go wording', () => {
    const base = 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_IPMASQ=true\n';
    expect(() => parseFlannelSubnetEnv(F, base + 'FLANNEL_MTU=14x2\n')).toThrow('strconv.ParseUint: parsing "14x2": invalid syntax');
    expect(() => parseFlannelSubnetEnv(F, base + 'FLANNEL_MTU=4294967296\n')).toThrow('value out of range');
    expect(() => parseFlannelSubnetEnv(F, base + 'FLANNEL_MTU=1450 \n')).toThrow(SubnetEnvInvalidError);
    expect(() => parseFlannelSubnetEnv(F, 'FLANNEL_NETWORK=10.1.0.0\n')).toThrow('invalid CIDR address: 10.1.0.0');
    expect(() => parseFlannelSubnetEnv(F, 'FLANNEL_SUBNET=10.1.300.1/24\n')).toThrow('invalid CIDR address: 10.1.300.1/24');
  });
});

describe('loadFlannelSubnetEnv', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flannel-env-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('reads the file', () => {
    const f = join(dir, 'subnet.env');
    writeFileSync(f, 'FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n');
    expect(loadFlannelSubnetEnv(f).subnet?.toString()).toBe('10.1.17.0/24');
  });

  test('a missing file is a not-found error that names the file (flannel.ts reports it as code 11)', () => {
    const f = join(dir, 'subnet.env');
    let err: unknown;
    try {
      loadFlannelSubnetEnv(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SubnetEnvNotFoundError);
    const e = err as SubnetEnvNotFoundError;
    expect(isNotFound(e)).toBe(true);
    expect(e.code).toBe('SUBNET_ENV_NOT_FOUND');
    expect(e.message).toBe(`open ${f}: no such file or directory`);
    expect(e.details).toContain('flanneld has not written');
    // a missing parent directory (no /run/flannel yet) is the same situation
    expect(() => loadFlannelSubnetEnv(join(dir, 'nodir', 'subnet.env'))).toThrow(SubnetEnvNotFoundError);
  });

  test('an unreadable path is not reported as missing', () => {
    // a directory where the file should be
    expect(() => loadFlannelSubnetEnv(dir)).toThrow(`open ${dir}: illegal operation on a directory`);
    expect(() => loadFlannelSubnetEnv(dir)).toThrow(SubnetEnvInvalidError);
  });
});
