import { describe, expect, it } from 'vitest';
import { peerTable } from './udp-datapath.ts';
import { packetFns } from './udp-packet.ts';
import { IPAddr, IPPrefix } from '../../lib/ip/index.ts';

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
      { subnet: IPPrefix.mustParse('10.244.0.0/16'), publicIP: IPAddr.mustParse('192.0.2.1'), port: 8285 },
      { subnet: IPPrefix.mustParse('10.244.2.0/24'), publicIP: IPAddr.mustParse('192.0.2.12'), port: 8285 },
      { subnet: IPPrefix.mustParse('10.244.2.128/25'), publicIP: IPAddr.mustParse('192.0.2.13'), port: 9000 },
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

/** A TCP/IPv4 packet (DF, timestamps option) with valid checksums; `payload` bytes. */
function tcp4(o: { seq: number; ack?: number; flags?: number; id?: number; payload: Uint8Array; ts?: number }): Buffer {
  const ihl = 20;
  const thl = 32; // 20 + NOP NOP TS(10)
  const b = Buffer.alloc(ihl + thl + o.payload.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(o.id ?? 0x100, 4);
  b[6] = 0x40; // DF
  b[8] = 64;
  b[9] = 6;
  b.set([10, 244, 1, 2, 10, 244, 2, 2], 12);
  const t = ihl;
  b.writeUInt16BE(40000, t);
  b.writeUInt16BE(5201, t + 2);
  b.writeUInt32BE(o.seq >>> 0, t + 4);
  b.writeUInt32BE(o.ack ?? 777, t + 8);
  b[t + 12] = (thl / 4) << 4;
  b[t + 13] = o.flags ?? 0x10;
  b.writeUInt16BE(512, t + 14);
  b.set([1, 1, 8, 10], t + 20);
  b.writeUInt32BE(o.ts ?? 1234, t + 24);
  b.writeUInt32BE(99, t + 28);
  b.set(o.payload, ihl + thl);
  const ic = P.inetChecksum(b, 0, 20);
  b.writeUInt16BE(ic, 10);
  b.writeUInt16BE(tcpSum(b), t + 16);
  return b;
}

/** TCP checksum of the packet as it stands with its check field zeroed. */
function tcpSum(b: Uint8Array): number {
  const l4 = b.length - 20;
  const ph = new Uint8Array(12 + l4);
  ph.set(b.subarray(12, 20), 0);
  ph[9] = 6;
  ph[10] = l4 >> 8;
  ph[11] = l4 & 0xff;
  ph.set(b.subarray(20), 12);
  ph[12 + 16] = 0;
  ph[12 + 17] = 0;
  return P.inetChecksum(ph, 0, ph.length);
}

const bytes = (n: number, seed = 7): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + (i >> 8)) & 0xff);

describe('udp datapath TSO cutting and TCP coalescing', () => {
  const mss = 1400;
  const payload = bytes(5 * mss + 321);

  function cut(sup: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const tmp = Buffer.alloc(2000);
    for (let k = 0; ; k++) {
      const n = P.tsoSegment(sup, 0, sup.length, mss, k, tmp, 0);
      if (n === 0) break;
      out.push(Buffer.from(tmp.subarray(0, n)));
    }
    return out;
  }

  it('cuts a TSO super-packet into wire packets with their own lengths, ids, sequence numbers and valid checksums', () => {
    const sup = tcp4({ seq: 0xfffff000, flags: 0x18, id: 0xfffe, payload });
    const segs = cut(sup);
    expect(segs).toHaveLength(6);
    let joined = Buffer.alloc(0);
    segs.forEach((s, k) => {
      expect(s.readUInt16BE(2)).toBe(s.length);
      expect(s.readUInt16BE(4)).toBe((0xfffe + k) & 0xffff);
      expect(P.inetChecksum(s, 0, 20)).toBe(0);
      expect(s.readUInt32BE(24)).toBe((0xfffff000 + k * mss) >>> 0);
      expect(s.readUInt16BE(36)).toBe(tcpSum(s));
      expect(s[33]).toBe(k === 5 ? 0x18 : 0x10); // PSH on the last only
      joined = Buffer.concat([joined, s.subarray(52)]);
      expect(s.length).toBe(k === 5 ? 52 + 321 : 52 + mss);
    });
    expect(Buffer.compare(joined, Buffer.from(payload))).toBe(0);
  });

  it('coalesces in-order segments into one GSO write the kernel cuts back into the very same packets', () => {
    const sup = tcp4({ seq: 1000, flags: 0x18, payload });
    const segs = cut(sup);
    const co = P.coNew(70000);
    for (const [k, s] of segs.entries()) {
      const hl = P.coCandidate(s, 0, s.length);
      expect(hl).toBe(52);
      if (k === 0) P.coStart(co, s, 0, s.length, hl);
      else expect(P.coAppend(co, s, 0, s.length, hl)).toBe(true);
    }
    expect(co.open).toBe(false); // PSH, and a short last segment, end it
    const n = P.coFinish(co);
    const out = Buffer.from(co.buf.subarray(0, n));
    // struct virtio_net_hdr: NEEDS_CSUM, GSO_TCPV4, hdr_len, gso_size, csum_start, csum_offset
    expect([out[0], out[1], out.readUInt16LE(2), out.readUInt16LE(4), out.readUInt16LE(6), out.readUInt16LE(8)]).toEqual([1, 1, 52, mss, 20, 16]);
    const pkt = out.subarray(10);
    expect(pkt.readUInt16BE(2)).toBe(pkt.length);
    expect(P.inetChecksum(pkt, 0, 20)).toBe(0);
    // The check field holds the pseudo-header sum the kernel completes.
    const l4 = pkt.length - 20;
    const pseudo = Buffer.alloc(12);
    pkt.copy(pseudo, 0, 12, 20);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(l4, 10);
    expect(pkt.readUInt16BE(36)).toBe(~P.inetChecksum(pseudo, 0, 12) & 0xffff);
    const again = cut(Buffer.from(pkt));
    expect(again.map((b) => b.toString('hex'))).toEqual(segs.map((b) => b.toString('hex')));
  });

  it('a lone packet goes out unchanged behind an all-zero virtio_net_hdr', () => {
    const s = tcp4({ seq: 5, payload: bytes(100) });
    const co = P.coNew(70000);
    P.coStart(co, s, 0, s.length, P.coCandidate(s, 0, s.length));
    const n = P.coFinish(co);
    expect([...co.buf.subarray(0, 10)]).toEqual(new Array(10).fill(0));
    expect(Buffer.compare(Buffer.from(co.buf.subarray(10, n)), s)).toBe(0);
  });

  it.each([
    ['a gap in sequence numbers', { seq: 1000 + 2 * mss }],
    ['another ack number', { seq: 1000 + mss, ack: 778 }],
    ['another timestamp option', { seq: 1000 + mss, ts: 1235 }],
    ['a longer payload than the first', { seq: 1000 + mss, len: mss + 1 }],
  ])('does not coalesce across %s', (_what, o: { seq: number; ack?: number; ts?: number; len?: number }) => {
    const co = P.coNew(70000);
    const a = tcp4({ seq: 1000, payload: bytes(mss) });
    P.coStart(co, a, 0, a.length, P.coCandidate(a, 0, a.length));
    const b = tcp4({ seq: o.seq, ...(o.ack !== undefined ? { ack: o.ack } : {}), ...(o.ts !== undefined ? { ts: o.ts } : {}), payload: bytes(o.len ?? mss) });
    expect(P.coAppend(co, b, 0, b.length, P.coCandidate(b, 0, b.length))).toBe(false);
    expect(co.count).toBe(1);
  });

  it.each([
    ['SYN', 0x12],
    ['FIN', 0x11],
    ['RST', 0x14],
    ['URG', 0x30],
    ['CWR', 0x90],
    ['no ACK', 0x00],
  ])('%s segments are never coalesced', (_f, flags) => {
    const s = tcp4({ seq: 1, flags, payload: bytes(10) });
    expect(P.coCandidate(s, 0, s.length)).toBe(0);
  });

  it('non-TCP, fragments and IP options are passed through', () => {
    const u = tcp4({ seq: 1, payload: bytes(10) });
    u[9] = 17;
    expect(P.coCandidate(u, 0, u.length)).toBe(0);
    const f = tcp4({ seq: 1, payload: bytes(10) });
    f[6] = 0x20; // MF, no DF
    expect(P.coCandidate(f, 0, f.length)).toBe(0);
    const opt = tcp4({ seq: 1, payload: bytes(10) });
    opt[0] = 0x46;
    expect(P.coCandidate(opt, 0, opt.length)).toBe(0);
  });

  it('completes a partial checksum (virtio NEEDS_CSUM): UDP over its pseudo header', () => {
    const d = bytes(333);
    const b = Buffer.alloc(28 + d.length);
    b[0] = 0x45;
    b.writeUInt16BE(b.length, 2);
    b[8] = 64;
    b[9] = 17;
    b.set([10, 244, 1, 2, 10, 244, 2, 2], 12);
    b.writeUInt16BE(P.inetChecksum(b, 0, 20), 10);
    b.writeUInt16BE(53, 20);
    b.writeUInt16BE(5353, 22);
    b.writeUInt16BE(8 + d.length, 24);
    b.set(d, 28);
    const pseudo = Buffer.alloc(12);
    b.copy(pseudo, 0, 12, 20);
    pseudo[9] = 17;
    pseudo.writeUInt16BE(8 + d.length, 10);
    b.writeUInt16BE(~P.inetChecksum(pseudo, 0, 12) & 0xffff, 26); // what the kernel leaves: the pseudo-header sum
    expect(P.finishCsumAt(b, 0, b.length, 20, 6)).toBe(true);
    const whole = Buffer.concat([pseudo, b.subarray(20)]);
    expect(P.inetChecksum(whole, 0, whole.length)).toBe(0);
    expect(P.finishCsumAt(b, 0, b.length, b.length, 6)).toBe(false);
  });
});

describe('udp datapath checksum', () => {
  it('word-at-a-time sums equal the byte-by-byte definition at every alignment and length', () => {
    const buf = Buffer.alloc(5000);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 7919 + (i >> 5)) & 0xff;
    const slow = (b: Uint8Array, off: number, len: number): number => {
      let s = 0;
      for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
      while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
      return ~s & 0xffff;
    };
    for (let off = 0; off < 8; off++) for (const len of [0, 1, 2, 3, 63, 64, 65, 66, 67, 1420, 1421, 4000]) expect(P.inetChecksum(buf, off, len)).toBe(slow(buf, off, len));
    const ones = Buffer.alloc(200, 0xff);
    expect(P.inetChecksum(ones, 2, 128)).toBe(slow(ones, 2, 128));
    // A subarray starting inside its ArrayBuffer.
    const sub = buf.subarray(3, 3000);
    expect(P.inetChecksum(sub, 1, 2000)).toBe(slow(sub, 1, 2000));
  });
});
