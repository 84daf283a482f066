import { describe, expect, it } from 'vitest';
import { Prefix } from '../subnet/prefix.ts';
import { peerTable } from './udp-datapath.ts';
import { packetFns } from './udp-packet.ts';

const P = packetFns();

/** A valid IPv4 header (+payload) with a correct checksum. */
function ipv4(opts: { src: string; dst: string; ttl: number; proto: number; frag?: number; payload?: number[] }): Uint8Array {
  const payload = opts.payload ?? [8, 0, 0, 0, 0, 1, 0, 1];
  const b = new Uint8Array(20 + payload.length);
  b[0] = 0x45;
  b[2] = b.length >> 8;
  b[3] = b.length & 0xff;
  b[4] = 0x12;
  b[5] = 0x34;
  b[6] = (opts.frag ?? 0) >> 8;
  b[7] = (opts.frag ?? 0) & 0xff;
  b[8] = opts.ttl;
  b[9] = opts.proto;
  b.set(opts.src.split('.').map(Number), 12);
  b.set(opts.dst.split('.').map(Number), 16);
  const c = P.inetChecksum(b, 0, 20);
  b[10] = c >> 8;
  b[11] = c & 0xff;
  b.set(payload, 20);
  return b;
}

describe('udp datapath packet code', () => {
  it.each([64, 2, 255, 0x80])('TTL %i decremented with a checksum equal to a full recomputation', (ttl) => {
    for (let id = 0; id < 2000; id += 7) {
      const b = ipv4({ src: '10.244.1.2', dst: '10.244.2.2', ttl, proto: 6 });
      b[4] = id >> 8;
      b[5] = id & 0xff;
      // Re-checksum after changing the id.
      b[10] = 0;
      b[11] = 0;
      const c = P.inetChecksum(b, 0, 20);
      b[10] = c >> 8;
      b[11] = c & 0xff;
      expect(P.decTTL(b, b.length)).toBe(true);
      expect(b[8]).toBe(ttl - 1);
      expect(P.inetChecksum(b, 0, 20)).toBe(0); // a valid header sums to 0xffff
    }
  });

  it('drops at TTL 1 and 0, and non-IPv4', () => {
    expect(P.decTTL(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', ttl: 1, proto: 6 }), 28)).toBe(false);
    expect(P.decTTL(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', ttl: 0, proto: 6 }), 28)).toBe(false);
    const v6 = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', ttl: 9, proto: 6 });
    v6[0] = 0x60;
    expect(P.decTTL(v6, 28)).toBe(false);
  });

  it('longest-prefix match over the published table', () => {
    const t = peerTable([
      { subnet: Prefix.parse('10.244.0.0/16'), publicIP: '192.0.2.1', port: 8285 },
      { subnet: Prefix.parse('10.244.2.0/24'), publicIP: '192.0.2.12', port: 8285 },
      { subnet: Prefix.parse('10.244.2.128/25'), publicIP: '192.0.2.13', port: 9000 },
    ]);
    const nets = Uint32Array.from(t.map((e) => e.net));
    const masks = Uint32Array.from(t.map((e) => e.mask));
    const ip = (s: string) => s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
    const hop = (d: string) => {
      const i = P.lookup(ip(d), t.length, nets, masks);
      return i < 0 ? undefined : `${t[i]!.hop}:${t[i]!.port}`;
    };
    expect(hop('10.244.2.200')).toBe(`${ip('192.0.2.13')}:9000`);
    expect(hop('10.244.2.5')).toBe(`${ip('192.0.2.12')}:8285`);
    expect(hop('10.244.9.5')).toBe(`${ip('192.0.2.1')}:8285`);
    expect(hop('10.245.0.1')).toBeUndefined();
    expect(P.ipv4Dst(ipv4({ src: '1.2.3.4', dst: '200.1.2.3', ttl: 1, proto: 6 }))).toBe(ip('200.1.2.3'));
  });

  it('net-unreachable: ICMP from the TUN address to the sender, quoting header + 8 bytes, valid checksums', () => {
    const pkt = ipv4({ src: '10.244.1.2', dst: '10.244.99.5', ttl: 63, proto: 17, payload: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] });
    const out = new Uint8Array(1600);
    const n = P.buildNetUnreachable(pkt, pkt.length, out, (10 << 24) | (244 << 16) | (1 << 8) | 0);
    expect(n).toBe(20 + 8 + 28);
    expect([...out.subarray(12, 20)]).toEqual([10, 244, 1, 0, 10, 244, 1, 2]);
    expect(out[9]).toBe(1);
    expect(P.inetChecksum(out, 0, 20)).toBe(0);
    expect([out[20], out[21]]).toEqual([3, 0]);
    expect(P.inetChecksum(out, 20, n - 20)).toBe(0);
    expect([...out.subarray(28, n)]).toEqual([...pkt.subarray(0, 28)]);
  });

  it('no ICMP error for ICMP errors or non-first fragments; echo requests do get one', () => {
    const out = new Uint8Array(1600);
    const err = ipv4({ src: '10.244.1.2', dst: '10.244.99.5', ttl: 63, proto: 1, payload: [3, 1, 0, 0, 0, 0, 0, 0] });
    expect(P.buildNetUnreachable(err, err.length, out, 1)).toBe(0);
    const frag = ipv4({ src: '10.244.1.2', dst: '10.244.99.5', ttl: 63, proto: 17, frag: 185 });
    expect(P.buildNetUnreachable(frag, frag.length, out, 1)).toBe(0);
    const echo = ipv4({ src: '10.244.1.2', dst: '10.244.99.5', ttl: 63, proto: 1 });
    expect(P.buildNetUnreachable(echo, echo.length, out, 1)).toBeGreaterThan(0);
  });
});
