import { describe, expect, it } from 'vitest';
import { CniError } from './types.ts';
import type { Result } from './types.ts';
import { convertResult, formatResult, parseResult, parseVersion, versionAtLeast } from './version.ts';
import { goJson, goQuote, goQuoteList } from './json.ts';

// Dual stack, two IPs per family, 1.1.0-only fields, and DNS.
const FULL: Result = {
  interfaces: [
    { name: 'cni0', mac: '2e:52:6f:f1:26:ec', mtu: 1450 },
    { name: 'eth0', mac: '4e:b4:b3:a5:a1:bf', sandbox: '/run/netns/p1', socketPath: '/s.sock', pciID: '0000:00:01.0' },
  ],
  ips: [
    { interface: 1, address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { interface: 1, address: '2001:db8::5/64', gateway: '2001:db8::1' },
    { interface: 1, address: '10.1.0.6/24' },
    { address: '2001:db8::6/64' },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 0 },
    { dst: '::/0', gw: '2001:db8::1' },
    { dst: '192.0.2.0/24' },
  ],
  dns: { nameservers: ['10.1.0.10'], domain: 'example.org', search: ['a.example.org'], options: ['ndots:5'] },
};

describe('convertResult', () => {
  it('1.1.0 keeps every field in reference key order', () => {
    const o = convertResult(FULL, '1.1.0');
    expect(JSON.stringify(o)).toBe(
      JSON.stringify({
        cniVersion: '1.1.0',
        interfaces: [
          { name: 'cni0', mac: '2e:52:6f:f1:26:ec', mtu: 1450 },
          { name: 'eth0', mac: '4e:b4:b3:a5:a1:bf', sandbox: '/run/netns/p1', socketPath: '/s.sock', pciID: '0000:00:01.0' },
        ],
        ips: [
          { interface: 1, address: '10.1.0.5/24', gateway: '10.1.0.1' },
          { interface: 1, address: '2001:db8::5/64', gateway: '2001:db8::1' },
          { interface: 1, address: '10.1.0.6/24' },
          { address: '2001:db8::6/64' },
        ],
        routes: [
          { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 0 },
          { dst: '::/0', gw: '2001:db8::1' },
          { dst: '192.0.2.0/24' },
        ],
        dns: { nameservers: ['10.1.0.10'], domain: 'example.org', search: ['a.example.org'], options: ['ndots:5'] },
      }),
    );
  });

  it('1.0.0 has the same types as 1.1.0 (libcni types/100)', () => {
    expect(convertResult(FULL, '1.0.0')).toEqual({ ...convertResult(FULL, '1.1.0'), cniVersion: '1.0.0' });
  });

  for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
    it(`${v} adds ips[].version first and drops interface mtu/socketPath/pciID`, () => {
      const o = convertResult(FULL, v);
      expect(JSON.stringify(o)).toBe(
        JSON.stringify({
          cniVersion: v,
          interfaces: [
            { name: 'cni0', mac: '2e:52:6f:f1:26:ec' },
            { name: 'eth0', mac: '4e:b4:b3:a5:a1:bf', sandbox: '/run/netns/p1' },
          ],
          ips: [
            { version: '4', interface: 1, address: '10.1.0.5/24', gateway: '10.1.0.1' },
            { version: '6', interface: 1, address: '2001:db8::5/64', gateway: '2001:db8::1' },
            { version: '4', interface: 1, address: '10.1.0.6/24' },
            { version: '6', address: '2001:db8::6/64' },
          ],
          routes: [
            { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 0 },
            { dst: '::/0', gw: '2001:db8::1' },
            { dst: '192.0.2.0/24' },
          ],
          dns: { nameservers: ['10.1.0.10'], domain: 'example.org', search: ['a.example.org'], options: ['ndots:5'] },
        }),
      );
    });
  }

  for (const v of ['0.1.0', '0.2.0']) {
    it(`${v} keeps the first IP per family and splits routes by family`, () => {
      const o = convertResult(FULL, v);
      expect(JSON.stringify(o)).toBe(
        JSON.stringify({
          cniVersion: v,
          ip4: {
            ip: '10.1.0.5/24',
            gateway: '10.1.0.1',
            routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '192.0.2.0/24' }],
          },
          ip6: { ip: '2001:db8::5/64', gateway: '2001:db8::1', routes: [{ dst: '::/0', gw: '2001:db8::1' }] },
          dns: { nameservers: ['10.1.0.10'], domain: 'example.org', search: ['a.example.org'], options: ['ndots:5'] },
        }),
      );
    });
  }

  it('0.2.0 drops routes of a family that has no IP', () => {
    const o = convertResult({ ips: [{ address: '2001:db8::5/64' }], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] }, '0.2.0');
    expect(o).toEqual({ cniVersion: '0.2.0', ip6: { ip: '2001:db8::5/64', routes: [{ dst: '::/0' }] }, dns: {} });
  });

  it('0.2.0 without any IP fails like libcni', () => {
    for (const r of [{}, { interfaces: [{ name: 'lo' }] }, { ips: [] }]) {
      let caught: unknown;
      try {
        convertResult(r, '0.2.0');
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CniError);
      expect((caught as CniError).message).toBe('cannot convert: no valid IP addresses');
      expect((caught as CniError).cniCode).toBe(999);
    }
  });

  it('empty dns: omitted for 1.x, {} for 0.x', () => {
    const r: Result = { ips: [{ address: '10.1.0.5/24' }], dns: {} };
    expect(convertResult(r, '1.0.0')).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/24' }] });
    expect(convertResult(r, '0.4.0')).toEqual({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.5/24' }], dns: {} });
  });

  it('omits empty lists and zero values like Go omitempty, keeps interface index 0 and table 0', () => {
    const r: Result = {
      interfaces: [],
      ips: [{ interface: 0, address: '10.1.0.5/24' }],
      routes: [{ dst: '10.0.0.0/8', mtu: 0, table: 0 }],
    };
    expect(JSON.stringify(convertResult(r, '1.1.0'))).toBe(
      '{"cniVersion":"1.1.0","ips":[{"interface":0,"address":"10.1.0.5/24"}],"routes":[{"dst":"10.0.0.0/8","table":0}]}',
    );
  });

  it('rejects an unsupported target version with code 1', () => {
    expect(() => convertResult(FULL, '0.5.0')).toThrow(expect.objectContaining({ cniCode: 1 }));
  });

  it('IPv4-mapped IPv6 counts as IPv4, as in Go', () => {
    expect(convertResult({ ips: [{ address: '::ffff:10.1.0.5/120' }] }, '0.4.0')).toMatchObject({
      ips: [{ version: '4' }],
    });
  });
});

describe('formatResult', () => {
  it('is 4-space indented, no trailing newline', () => {
    expect(formatResult({ ips: [{ address: '10.1.0.5/24' }] }, '0.3.1')).toBe(
      '{\n    "cniVersion": "0.3.1",\n    "ips": [\n        {\n            "version": "4",\n            "address": "10.1.0.5/24"\n        }\n    ],\n    "dns": {}\n}',
    );
  });
});

describe('parseResult', () => {
  it('round-trips 1.0.0 and 1.1.0 output exactly', () => {
    for (const v of ['1.0.0', '1.1.0']) {
      expect(parseResult(convertResult(FULL, v), '0.1.0')).toEqual(FULL);
      expect(parseResult(formatResult(FULL, v), '0.1.0')).toEqual(FULL);
    }
  });

  it('round-trips 0.3.x/0.4.0 for what those versions can carry', () => {
    const r: Result = {
      interfaces: [{ name: 'eth0', mac: '4e:b4:b3:a5:a1:bf', sandbox: '/run/netns/p1' }],
      ips: [{ interface: 0, address: '10.1.0.5/24', gateway: '10.1.0.1' }, { address: '2001:db8::5/64' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
      dns: { nameservers: ['10.1.0.10'] },
    };
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      expect(parseResult(convertResult(r, v), '1.0.0')).toEqual(r);
      expect(convertResult(parseResult(convertResult(FULL, v), '1.0.0'), v)).toEqual(convertResult(FULL, v));
    }
  });

  it('round-trips 0.1.0/0.2.0 (first IP per family, routes in ip4 then ip6 order)', () => {
    for (const v of ['0.1.0', '0.2.0']) {
      const parsed = parseResult(convertResult(FULL, v), '1.0.0');
      expect(parsed).toEqual({
        ips: [
          { address: '10.1.0.5/24', gateway: '10.1.0.1' },
          { address: '2001:db8::5/64', gateway: '2001:db8::1' },
        ],
        routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '192.0.2.0/24' }, { dst: '::/0', gw: '2001:db8::1' }],
        dns: FULL.dns,
      });
      expect(convertResult(parsed, v)).toEqual(convertResult(FULL, v));
    }
  });

  it('0.4.0 input drops its version fields; extra interface fields are not part of 0.4.0', () => {
    const parsed = parseResult(
      {
        cniVersion: '0.4.0',
        interfaces: [{ name: 'eth0', mtu: 9000 }],
        ips: [{ version: '4', interface: 0, address: '10.1.0.5/24' }],
        dns: {},
      },
      '1.0.0',
    );
    expect(parsed).toEqual({ interfaces: [{ name: 'eth0' }], ips: [{ interface: 0, address: '10.1.0.5/24' }] });
  });

  it('a result without cniVersion takes the fallback version', () => {
    expect(parseResult({ ip4: { ip: '10.1.0.5/24' } }, '0.2.0')).toEqual({ ips: [{ address: '10.1.0.5/24' }] });
    expect(parseResult({ ips: [{ version: '4', address: '10.1.0.5/24' }] }, '0.3.1')).toEqual({
      ips: [{ address: '10.1.0.5/24' }],
    });
    // In 1.0.0 shape, an ip4 key means nothing.
    expect(parseResult({ ip4: { ip: '10.1.0.5/24' } }, '1.0.0')).toEqual({});
  });

  it('the result\'s own cniVersion wins over the fallback', () => {
    expect(parseResult({ cniVersion: '0.2.0', ip4: { ip: '10.1.0.5/24' } }, '1.0.0')).toEqual({
      ips: [{ address: '10.1.0.5/24' }],
    });
  });

  const bad: [string, unknown, number, string][] = [
    ['unsupported version', { cniVersion: '7.0.0' }, 1, 'unsupported CNI result version "7.0.0"'],
    ['bad CIDR', { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5' }] }, 6, 'ips[0].address: invalid CIDR address: 10.1.0.5'],
    ['bad prefix', { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/33' }] }, 6, 'ips[0].address: invalid CIDR address: 10.1.0.5/33'],
    ['bad gateway', { cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/24', gateway: 'x' }] }, 6, 'ips[0].gateway: invalid IP address: x'],
    ['bad route', { cniVersion: '1.0.0', routes: [{ dst: 'default' }] }, 6, 'routes[0].dst: invalid CIDR address: default'],
    ['ips not a list', { cniVersion: '1.0.0', ips: {} }, 6, 'result.ips: expected a list of objects'],
    ['interface name missing', { cniVersion: '1.0.0', interfaces: [{}] }, 6, 'interfaces[0].name: expected a string'],
    ['not an object', [], 6, 'failed to parse result: not a JSON object'],
    ['not JSON', 'nope', 6, 'failed to parse result: Unexpected token \'o\', "nope" is not valid JSON'],
  ];
  for (const [name, input, code, msg] of bad) {
    it(`rejects ${name}`, () => {
      let caught: unknown;
      try {
        parseResult(input, '1.0.0');
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CniError);
      expect({ code: (caught as CniError).cniCode, msg: (caught as CniError).message }).toEqual({ code, msg });
    });
  }
});

describe('versions', () => {
  it('parses like libcni', () => {
    expect(parseVersion('')).toEqual([0, 1, 0]);
    expect(parseVersion('1')).toEqual([1, 0, 0]);
    expect(parseVersion('0.4.0')).toEqual([0, 4, 0]);
    expect(() => parseVersion('1.2.3.4')).toThrow('invalid version "1.2.3.4": too many parts');
    expect(() => parseVersion('1.x')).toThrow('failed to convert minor version part "x": invalid syntax');
  });
  it('compares', () => {
    expect(versionAtLeast('0.4.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('1.0.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
    expect(versionAtLeast('1.0.0', '1.1.0')).toBe(false);
    expect(versionAtLeast('0.10.0', '0.4.0')).toBe(true);
  });
});

describe('Go-compatible text', () => {
  it('escapes HTML characters as Go does', () => {
    expect(goJson({ m: '<a>&\u2028' })).toBe('{"m":"\\u003ca\\u003e\\u0026\\u2028"}');
  });
  it('quotes like %q', () => {
    expect(goQuote('a"b\\c\n\x07\x1b')).toBe('"a\\"b\\\\c\\n\\a\\x1b"');
    expect(goQuoteList(['FOO=bar', 'X=y'])).toBe('["FOO=bar" "X=y"]');
    expect(goQuoteList([])).toBe('[]');
  });
});
