import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNotFound } from './errors.ts';
import { SubnetEnvError, SubnetEnvNotFoundError, missingKeys, parseSubnetEnv, readSubnetEnvFile } from './subnet-env.ts';

const strs = (l: readonly { toString(): string }[]): string[] => l.map((p) => p.toString());
const FULL = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

function errorOf(text: string): SubnetEnvError {
  try {
    parseSubnetEnv(text, '/run/flannel/subnet.env');
  } catch (err) {
    expect(err).toBeInstanceOf(SubnetEnvError);
    return err as SubnetEnvError;
  }
  throw new Error('expected an error');
}

describe('parseSubnetEnv', () => {
  it('reads what flanneld writes, values as written (FLANNEL_SUBNET keeps its host bits)', () => {
    const env = parseSubnetEnv(
      FULL + 'FLANNEL_IPV6_NETWORK=2001:db8:42::/56\nFLANNEL_IPV6_SUBNET=2001:db8:42:1::1/64\n',
    );
    expect(strs(env.networks)).toEqual(['10.244.0.0/16']);
    expect(env.subnet?.toString()).toBe('10.244.1.1/24');
    expect(strs(env.ipv6Networks)).toEqual(['2001:db8:42::/56']);
    expect(env.ipv6Subnet?.toString()).toBe('2001:db8:42:1::1/64');
    expect([env.mtu, env.ipMasq]).toEqual([1450, true]);
  });

  it('absent keys are absent, not errors', () => {
    expect(parseSubnetEnv('')).toEqual({ networks: [], subnet: undefined, ipv6Networks: [], ipv6Subnet: undefined, mtu: undefined, ipMasq: undefined });
  });

  it('ignores unknown keys, blank lines and # comments (flanneld\'s former reader did too)', () => {
    const env = parseSubnetEnv('# written by flanneld\n\nFOO=bar\nnonsense\nFLANNEL_IPMASQ=false\n');
    expect(env.ipMasq).toBe(false);
    expect(env.networks).toEqual([]);
  });

  it('a comma list: every item parsed, in order (the plugin\'s former behaviour)', () => {
    const env = parseSubnetEnv('FLANNEL_NETWORK=10.1.0.0/16,192.168.0.0/16,10.1.5.5/16\n');
    expect(strs(env.networks)).toEqual(['10.1.0.0/16', '192.168.0.0/16', '10.1.5.5/16']);
    // flanneld's former reader took the first item and ignored a bad second one
    expect(errorOf('FLANNEL_NETWORK=10.1.0.0/16,nope\n').message).toBe('invalid CIDR address: nope');
    expect(errorOf('FLANNEL_NETWORK=10.1.0.0/16,\n').message).toBe('invalid CIDR address: ');
  });

  it('whitespace is not trimmed: a padded value is invalid (flanneld\'s former reader trimmed)', () => {
    expect(errorOf('FLANNEL_MTU=1450 \n').message).toBe('strconv.ParseUint: parsing "1450 ": invalid syntax');
    expect(errorOf('FLANNEL_SUBNET= 10.1.17.1/24\n').message).toBe('invalid CIDR address:  10.1.17.1/24');
    expect(errorOf('FLANNEL_NETWORK=10.1.0.0/16, 10.2.0.0/16\n').message).toBe('invalid CIDR address:  10.2.0.0/16');
    // a padded key is an unknown key, as upstream
    expect(parseSubnetEnv(' FLANNEL_MTU=1450\nFLANNEL_MTU =1\n').mtu).toBeUndefined();
  });

  it('CRLF line ends; the last line needs no newline; a later line for a key wins', () => {
    const env = parseSubnetEnv('FLANNEL_SUBNET=10.1.17.1/24\r\nFLANNEL_SUBNET=10.1.18.1/24\r\nFLANNEL_MTU=1472');
    expect(env.subnet?.toString()).toBe('10.1.18.1/24');
    expect(env.mtu).toBe(1472);
  });

  it('a bad value fails even when a later line would replace it (as upstream, line by line)', () => {
    expect(errorOf('FLANNEL_MTU=x\nFLANNEL_MTU=1450\n').message).toBe('strconv.ParseUint: parsing "x": invalid syntax');
  });

  it('a known key without "=" is an error; the error names the file', () => {
    const e = errorOf('FLANNEL_MTU\n');
    expect(e.message).toBe('/run/flannel/subnet.env: line "FLANNEL_MTU" has no value');
    expect(e.file).toBe('/run/flannel/subnet.env');
    expect(e.code).toBe('SUBNET_ENV_INVALID');
  });

  it('FLANNEL_MTU is a decimal uint32; FLANNEL_IPMASQ is true only for "true"', () => {
    expect(parseSubnetEnv('FLANNEL_MTU=4294967295\n').mtu).toBe(4294967295);
    expect(errorOf('FLANNEL_MTU=4294967296\n').message).toBe('strconv.ParseUint: parsing "4294967296": value out of range');
    expect(errorOf('FLANNEL_MTU=-1\n').message).toBe('strconv.ParseUint: parsing "-1": invalid syntax');
    for (const v of ['TRUE', 'True', '1', 'yes', '']) expect(parseSubnetEnv(`FLANNEL_IPMASQ=${v}\n`).ipMasq).toBe(false);
    expect(parseSubnetEnv('FLANNEL_IPMASQ=true\n').ipMasq).toBe(true);
  });

  it('bad CIDRs', () => {
    expect(errorOf('FLANNEL_NETWORK=10.1.0.0\n').message).toBe('invalid CIDR address: 10.1.0.0');
    expect(errorOf('FLANNEL_SUBNET=10.1.300.1/24\n').message).toBe('invalid CIDR address: 10.1.300.1/24');
    expect(errorOf('FLANNEL_IPV6_SUBNET=fc00::1/129\n').message).toBe('invalid CIDR address: fc00::1/129');
  });
});

describe('missingKeys', () => {
  it('names what upstream requires: a network and a subnet of some family, MTU, IPMASQ', () => {
    expect(missingKeys(parseSubnetEnv(FULL))).toEqual([]);
    expect(missingKeys(parseSubnetEnv('FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00::1/64\nFLANNEL_MTU=1\nFLANNEL_IPMASQ=false\n'))).toEqual([]);
    expect(missingKeys(parseSubnetEnv(''))).toEqual([
      'FLANNEL_NETWORK',
      'FLANNEL_IPV6_NETWORK',
      'FLANNEL_SUBNET',
      'FLANNEL_IPV6_SUBNET',
      'FLANNEL_MTU',
      'FLANNEL_IPMASQ',
    ]);
    expect(missingKeys(parseSubnetEnv('FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.17.1/24\n'))).toEqual(['FLANNEL_MTU', 'FLANNEL_IPMASQ']);
  });
});

describe('readSubnetEnvFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lib-subnet-env-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and parses the file', () => {
    const f = join(dir, 'subnet.env');
    writeFileSync(f, FULL);
    expect(readSubnetEnvFile(f).mtu).toBe(1450);
  });

  it('a missing file or directory is SubnetEnvNotFoundError, which isNotFound recognises', () => {
    for (const f of [join(dir, 'subnet.env'), join(dir, 'nodir', 'subnet.env')]) {
      let err: unknown;
      try {
        readSubnetEnvFile(f);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SubnetEnvNotFoundError);
      expect(isNotFound(err)).toBe(true);
      expect((err as SubnetEnvNotFoundError).message).toBe(`open ${f}: no such file or directory`);
      expect((err as SubnetEnvNotFoundError).details).toContain('flanneld has not written');
    }
    writeFileSync(join(dir, 'file'), '');
    expect(() => readSubnetEnvFile(join(dir, 'file', 'subnet.env'))).toThrow(SubnetEnvNotFoundError);
  });

  it('any other read failure is SubnetEnvError in Go wording', () => {
    expect(() => readSubnetEnvFile(dir)).toThrow(`open ${dir}: illegal operation on a directory`);
    expect(() => readSubnetEnvFile(dir)).toThrow(SubnetEnvError);
  });
});
