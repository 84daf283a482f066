import { describe, expect, it } from 'vitest';
import { crc32c, parseReceived, sctpPacket } from './sctp.ts';

describe('SCTP packets for the raw-socket probes', () => {
  it('computes CRC32c (RFC 3720 B.4 check values)', () => {
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('builds a packet whose checksum verifies, padded to 4 bytes, and parses it back behind an IPv4 header', () => {
    const pkt = sctpPacket({ sport: 40000, dport: 80, vtag: 0x01020304, type: 10, value: Buffer.from('abcde') });
    expect(pkt.length).toBe(12 + 12);
    const stored = pkt.readUInt32LE(8);
    const zeroed = Buffer.from(pkt);
    zeroed.writeUInt32LE(0, 8);
    expect(crc32c(zeroed)).toBe(stored);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip[9] = 132;
    ip.set([192, 0, 2, 7], 12);
    expect(parseReceived(Buffer.concat([ip, pkt]))).toEqual({ src: '192.0.2.7', sport: 40000, dport: 80, vtag: 0x01020304, type: 10, value: Buffer.from('abcde') });
    expect(sctpPacket({ sport: 1, dport: 2, vtag: 3, type: 1, value: Buffer.alloc(0) }, { badChecksum: true }).readUInt32LE(8)).not.toBe(
      sctpPacket({ sport: 1, dport: 2, vtag: 3, type: 1, value: Buffer.alloc(0) }).readUInt32LE(8),
    );
  });
});
