import { describe, expect, it } from 'vitest';
import { IPAddr } from '../ip/index.ts';
import { FakeConntrack, deleteArgs, insertArgs, matchesFilter, parseConntrackList } from './conntrack.ts';

const ip = IPAddr.mustParse;

// Captured from `conntrack -L` (conntrack-tools 1.4.7) after `conntrack -I` of these entries.
const LISTED = `udp      17 99 src=198.51.100.1 dst=198.51.100.2 sport=1000 dport=53 [UNREPLIED] src=198.51.100.2 dst=198.51.100.1 sport=53 dport=1000 mark=0 use=1
tcp      6 99 ESTABLISHED src=198.51.100.1 dst=198.51.100.2 sport=1000 dport=80 [UNREPLIED] src=198.51.100.2 dst=198.51.100.1 sport=80 dport=1000 mark=0 use=1
udp      17 99 src=fd00::1 dst=fd00::2 sport=1000 dport=53 [UNREPLIED] src=fd00::2 dst=fd00::1 sport=53 dport=1000 mark=0 use=1
`;

describe('conntrack arguments', () => {
  it('deletes by original destination (and port) and by reply source, per family', () => {
    expect(deleteArgs({ proto: 'udp', origDst: ip('10.96.0.10'), origDstPort: 53 })).toEqual(['-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '10.96.0.10', '--orig-port-dst', '53']);
    expect(deleteArgs({ proto: 'udp', origDst: ip('fd00:96::a') })).toEqual(['-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd00:96::a']);
    expect(deleteArgs({ proto: 'sctp', replySrc: ip('10.244.1.5') })).toEqual(['-D', '-f', 'ipv4', '-p', 'sctp', '--reply-src', '10.244.1.5']);
    // One flow exactly (netpolicy's cut of a connection that policy now denies).
    const flow = { proto: 'tcp' as const, origDst: ip('10.0.1.1'), origDstPort: 80, origSrc: ip('10.0.2.1'), origSrcPort: 40000 };
    expect(deleteArgs(flow)).toEqual(['-D', '-f', 'ipv4', '-p', 'tcp', '--orig-dst', '10.0.1.1', '--orig-port-dst', '80', '--orig-src', '10.0.2.1', '--orig-port-src', '40000']);
    const e = { family: 4 as const, proto: 'tcp', timeout: 1, flags: [], orig: { src: ip('10.0.2.1'), dst: ip('10.0.1.1'), sport: 40000, dport: 80 }, reply: { src: ip('10.0.1.1'), dst: ip('10.0.2.1'), sport: 80, dport: 40000 } };
    expect(matchesFilter(e, flow)).toBe(true);
    expect(matchesFilter(e, { ...flow, origSrcPort: 40001 })).toBe(false);
    expect(matchesFilter(e, { ...flow, origSrc: ip('10.0.2.2') })).toBe(false);
  });
  it('inserts entries with both tuples', () => {
    expect(insertArgs({ proto: 'udp', timeout: 100, orig: { src: ip('198.51.100.1'), dst: ip('198.51.100.2'), sport: 1000, dport: 53 }, reply: { src: ip('198.51.100.2'), dst: ip('198.51.100.1'), sport: 53, dport: 1000 } })).toEqual([
      '-I', '-p', 'udp', '-s', '198.51.100.1', '-d', '198.51.100.2', '--sport', '1000', '--dport', '53', '-r', '198.51.100.2', '-q', '198.51.100.1', '--reply-port-src', '53', '--reply-port-dst', '1000', '-t', '100',
    ]);
  });
});

describe('parseConntrackList', () => {
  it('reads both tuples, state, flags and family', () => {
    const [udp, tcp, v6] = parseConntrackList(LISTED);
    expect(udp).toMatchObject({ family: 4, proto: 'udp', timeout: 99, flags: ['UNREPLIED'], orig: { sport: 1000, dport: 53 }, reply: { sport: 53, dport: 1000 } });
    expect(udp!.orig.dst.toString()).toBe('198.51.100.2');
    expect(udp!.reply.src.toString()).toBe('198.51.100.2');
    expect(udp!.state).toBeUndefined();
    expect(tcp!.state).toBe('ESTABLISHED');
    expect(v6!.family).toBe(6);
    expect(() => parseConntrackList('garbage line\n')).toThrow(/cannot parse/);
  });
  it('matches filters as the tool does', () => {
    const [udp, tcp, v6] = parseConntrackList(LISTED);
    expect(matchesFilter(udp!, { proto: 'udp', origDst: ip('198.51.100.2'), origDstPort: 53 })).toBe(true);
    expect(matchesFilter(udp!, { proto: 'udp', origDst: ip('198.51.100.2'), origDstPort: 54 })).toBe(false);
    expect(matchesFilter(tcp!, { proto: 'udp', origDst: ip('198.51.100.2') })).toBe(false);
    expect(matchesFilter(v6!, { proto: 'udp', replySrc: ip('fd00::2') })).toBe(true);
    expect(matchesFilter(v6!, { proto: 'udp', replySrc: ip('198.51.100.2') })).toBe(false);
  });
});

describe('FakeConntrack', () => {
  it('holds entries, deletes what matches, counts and records deletions', async () => {
    const f = new FakeConntrack();
    f.entries = parseConntrackList(LISTED);
    expect(await f.delete({ proto: 'udp', origDst: ip('198.51.100.2'), origDstPort: 53 })).toBe(1);
    expect(await f.delete({ proto: 'udp', origDst: ip('198.51.100.2'), origDstPort: 53 })).toBe(0);
    expect(await f.delete({ proto: 'udp', replySrc: ip('fd00::2') })).toBe(1);
    expect((await f.list(4)).map((e) => e.proto)).toEqual(['tcp']);
    expect(await f.list(6)).toEqual([]);
    await f.insert({ proto: 'udp', timeout: 30, orig: { src: ip('fd00::1'), dst: ip('fd00::9'), sport: 1, dport: 2 }, reply: { src: ip('fd00::9'), dst: ip('fd00::1'), sport: 2, dport: 1 } });
    expect((await f.list(6, 'udp')).map((e) => e.orig.dst.toString())).toEqual(['fd00::9']);
    expect(await f.list(6, 'tcp')).toEqual([]);
    expect(f.deletes).toHaveLength(3);
  });
});
