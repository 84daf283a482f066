import { describe, expect, it } from 'vitest';
import { echoRequest, inetChecksum, parseIcmp } from './icmp.ts';

/** An IPv4 header (no options) carrying `payload` of `protocol`. */
function ipv4(protocol: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = 64;
  h[9] = protocol;
  Buffer.from([10, 244, 1, 2]).copy(h, 12);
  Buffer.from([10, 244, 2, 3]).copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

function ipv6(next: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payload.length, 4);
  h[6] = next;
  h[7] = 64;
  return Buffer.concat([h, payload]);
}

describe('echoRequest', () => {
  it('builds an IPv4 echo request with a valid checksum', () => {
    const b = echoRequest(4, 0x1234, 7, Buffer.from('netstack-check 7'));
    expect(b[0]).toBe(8);
    expect(b[1]).toBe(0);
    expect(b.readUInt16BE(4)).toBe(0x1234);
    expect(b.readUInt16BE(6)).toBe(7);
    expect(b.subarray(8).toString()).toBe('netstack-check 7');
    expect(inetChecksum(b)).toBe(0);
    expect(b.readUInt16BE(2)).not.toBe(0);
  });

  it('leaves the ICMPv6 checksum to the kernel', () => {
    const b = echoRequest(6, 0xbeef, 65536 + 3, Buffer.from('x'));
    expect(b[0]).toBe(128);
    expect(b.readUInt16BE(2)).toBe(0);
    expect(b.readUInt16BE(6)).toBe(3);
  });
});

describe('inetChecksum', () => {
  it('is RFC 1071 (odd length padded with zero)', () => {
    // RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement: 220d).
    expect(inetChecksum(Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
    expect(inetChecksum(Buffer.from([0x01]))).toBe(inetChecksum(Buffer.from([0x01, 0x00])));
  });
});

describe('parseIcmp', () => {
  it('reads an IPv4 echo reply behind its IP header', () => {
    const reply = Buffer.from(echoRequest(4, 0x1234, 9, Buffer.from('p')));
    reply[0] = 0;
    expect(parseIcmp(4, ipv4(1, reply))).toEqual({ kind: 'reply', id: 0x1234, seq: 9 });
  });

  it('reads an ICMPv6 echo reply (no IP header on a raw ICMPv6 socket)', () => {
    const reply = Buffer.from(echoRequest(6, 0x4321, 11, Buffer.from('p')));
    reply[0] = 129;
    expect(parseIcmp(6, reply)).toEqual({ kind: 'reply', id: 0x4321, seq: 11 });
  });

  it('matches a destination unreachable to the echo request it quotes', () => {
    const quoted = ipv4(1, echoRequest(4, 0x1234, 5, Buffer.alloc(0)));
    const err = Buffer.concat([Buffer.from([3, 13, 0, 0, 0, 0, 0, 0]), quoted]);
    expect(parseIcmp(4, ipv4(1, err))).toEqual({ kind: 'unreachable', id: 0x1234, seq: 5, code: 13 });
    const quoted6 = ipv6(58, echoRequest(6, 0x4321, 6, Buffer.alloc(0)));
    const err6 = Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]), quoted6]);
    expect(parseIcmp(6, err6)).toEqual({ kind: 'unreachable', id: 0x4321, seq: 6, code: 1 });
  });

  it('ignores echo requests, errors about other protocols and short packets', () => {
    expect(parseIcmp(4, ipv4(1, echoRequest(4, 1, 1, Buffer.alloc(0))))).toBeUndefined();
    expect(parseIcmp(6, echoRequest(6, 1, 1, Buffer.alloc(0)))).toBeUndefined();
    const udp = ipv4(17, Buffer.alloc(8));
    expect(parseIcmp(4, ipv4(1, Buffer.concat([Buffer.from([3, 3, 0, 0, 0, 0, 0, 0]), udp])))).toBeUndefined();
    expect(parseIcmp(4, Buffer.alloc(10))).toBeUndefined();
    expect(parseIcmp(6, Buffer.alloc(4))).toBeUndefined();
  });
});
