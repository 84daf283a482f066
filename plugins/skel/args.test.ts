import { describe, expect, it } from 'vitest';
import { getPrevResult, getRuntimeConfig, parseArgsBool, parseCniArgs } from './args.ts';
import { CniError } from './types.ts';
import type { CmdArgs } from './types.ts';

const KNOWN = ['K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'IP', 'MAC'] as const;

function thrown(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return { code: (err as CniError).cniCode, msg: (err as CniError).message };
  }
  throw new Error('expected an error');
}

describe('parseCniArgs', () => {
  it('returns known keys, last occurrence wins', () => {
    const m = parseCniArgs('K8S_POD_NAME=web;IP=10.1.0.9;K8S_POD_NAME=web2', KNOWN);
    expect([...m]).toEqual([
      ['K8S_POD_NAME', 'web2'],
      ['IP', '10.1.0.9'],
    ]);
  });

  it('empty CNI_ARGS is no args', () => {
    expect(parseCniArgs('', KNOWN).size).toBe(0);
  });

  it('rejects unknown keys with code 2 and the reference text', () => {
    expect(thrown(() => parseCniArgs('FOO=bar', KNOWN))).toEqual({ code: 2, msg: 'ARGS: unknown args ["FOO=bar"]' });
    expect(thrown(() => parseCniArgs('FOO=bar;IP=1.2.3.4;k8s_pod_name=x', KNOWN))).toEqual({
      code: 2,
      msg: 'ARGS: unknown args ["FOO=bar" "k8s_pod_name=x"]',
    });
  });

  it('IgnoreUnknown (anywhere in the list, any case of the value) accepts unknown keys', () => {
    const containerd = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1';
    expect([...parseCniArgs(containerd, KNOWN)]).toEqual([
      ['K8S_POD_NAMESPACE', 'default'],
      ['K8S_POD_NAME', 'web'],
    ]);
    for (const v of ['true', 'TRUE', 'True']) {
      expect(parseCniArgs(`FOO=bar;IgnoreUnknown=${v}`, KNOWN).size).toBe(0);
    }
  });

  it('IgnoreUnknown=0/false keeps unknown keys an error', () => {
    for (const v of ['0', 'false', 'FALSE']) {
      expect(thrown(() => parseCniArgs(`IgnoreUnknown=${v};FOO=bar`, KNOWN)).code).toBe(2);
    }
  });

  it('rejects a bad IgnoreUnknown value and malformed pairs with code 4', () => {
    expect(thrown(() => parseCniArgs('IgnoreUnknown=yes', KNOWN))).toEqual({
      code: 4,
      msg: 'ARGS: error parsing value of pair "IgnoreUnknown=yes": boolean unmarshal error: invalid input yes',
    });
    expect(thrown(() => parseCniArgs('IP', KNOWN))).toEqual({ code: 4, msg: 'ARGS: invalid pair "IP"' });
    expect(thrown(() => parseCniArgs('IP=a=b', KNOWN))).toEqual({ code: 4, msg: 'ARGS: invalid pair "IP=a=b"' });
    expect(thrown(() => parseCniArgs('IP=1.2.3.4;', KNOWN))).toEqual({ code: 4, msg: 'ARGS: invalid pair ""' });
  });

  it('parseArgsBool', () => {
    expect(['1', 'true', 'TrUe', '0', 'false', 'False', 'yes', ''].map(parseArgsBool)).toEqual([
      true,
      true,
      true,
      false,
      false,
      false,
      undefined,
      undefined,
    ]);
  });
});

function cmdArgs(config: Record<string, unknown>, cniVersion: string): CmdArgs {
  return {
    command: 'CHECK',
    containerId: 'c',
    netns: '',
    ifName: 'eth0',
    args: '',
    path: [],
    stdinData: Buffer.from(JSON.stringify(config)),
    config,
    cniVersion,
    env: {},
  };
}

describe('getPrevResult / getRuntimeConfig', () => {
  it('absent prevResult is undefined', () => {
    expect(getPrevResult(cmdArgs({ name: 'n' }, '1.0.0'))).toBeUndefined();
  });

  it('parses prevResult in the config version when it has none', () => {
    const prev = { ips: [{ version: '4', interface: 0, address: '10.1.0.5/24' }], interfaces: [{ name: 'eth0' }] };
    expect(getPrevResult(cmdArgs({ name: 'n', prevResult: prev }, '0.4.0'))).toEqual({
      interfaces: [{ name: 'eth0' }],
      ips: [{ interface: 0, address: '10.1.0.5/24' }],
    });
  });

  it('a broken prevResult is an error naming prevResult', () => {
    const a = cmdArgs({ name: 'n', prevResult: { ips: [{ address: 'x' }] } }, '1.0.0');
    expect(thrown(() => getPrevResult(a))).toEqual({
      code: 6,
      msg: 'could not parse prevResult: ips[0].address: invalid CIDR address: x',
    });
  });

  it('runtimeConfig', () => {
    expect(getRuntimeConfig(cmdArgs({ name: 'n', runtimeConfig: { ips: ['10.1.0.9/24'] } }, '1.0.0'))).toEqual({
      ips: ['10.1.0.9/24'],
    });
    expect(getRuntimeConfig(cmdArgs({ name: 'n' }, '1.0.0'))).toEqual({});
    expect(getRuntimeConfig(cmdArgs({ name: 'n', runtimeConfig: 'x' }, '1.0.0'))).toEqual({});
  });
});
