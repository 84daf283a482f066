// The IPVS netlink client against a real ip_vs (the test VM's Debian 6.1
// kernel), each case in a namespace of its own:
//   - the IpvsHandle cases that FakeIpvs passes too (lib/netlink/ipvs-fake-cases.ts):
//     services and destinations of tcp/udp/sctp over IPv4 and IPv6, updates,
//     EEXIST/ESRCH/ENOENT/ERANGE/EINVAL, timeouts, flush, a 1,000-destination burst;
//   - what we program, as ipvsadm lists it (`ipvsadm -Ln`, `-Ln --timeout`);
//   - what ipvsadm programs, as we read it.
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { IPAddr } from '../../../lib/ip/index.ts';
import { Handle } from '../../../lib/netlink/index.ts';
import { openIpvs, type Ipvs } from '../../../lib/netlink/ipvs.ts';
import { ADDRS, ipvsHandleCases } from '../../../lib/netlink/ipvs-fake-cases.ts';
import { ipvsDestination, ipvsService } from '../../../lib/netlink/ipvs-fake.ts';
import { IPVS_SVC_F_PERSISTENT, IPVS_SVC_F_SCHED2, type IpvsHandle } from '../../../lib/netlink/ipvs-types.ts';
import { World } from '../../harness/world.ts';

const ip = (s: string): IPAddr => IPAddr.mustParse(s);

/** A namespace with lo up (IPv4 destinations need its local table) and an IPVS handle in it. */
async function ipvsNamespace(w: World, name: string): Promise<{ ns: string; h: Ipvs }> {
  const ns = w.netns(name);
  const rt = Handle.open({ netns: ns });
  try {
    await rt.linkSetUp(1);
  } finally {
    rt.close();
  }
  const h = await openIpvs({ netns: ns });
  w.onCleanup(() => h.close());
  return { ns, h };
}

/** ipvsadm in the namespace at path `ns` (ip netns exec takes its name). */
const ipvsadm = (ns: string, ...args: string[]): string => execFileSync('ip', ['netns', 'exec', basename(ns), 'ipvsadm', ...args], { encoding: 'utf8' });

/** `ipvsadm -Ln` without its header lines, runs of blanks collapsed. */
function listing(ns: string, ...extra: string[]): string[] {
  return ipvsadm(ns, '-Ln', ...extra)
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '' && !/^(IP Virtual Server|Prot |-> RemoteAddress)/.test(l));
}

describe('IpvsHandle on the kernel', () => {
  const worlds = new Map<IpvsHandle, World>();
  let n = 0;
  ipvsHandleCases(
    async () => {
      const w = new World('ipvs');
      const { h } = await ipvsNamespace(w, `c${n++}`);
      worlds.set(h, w);
      return h;
    },
    async (h) => {
      const w = worlds.get(h)!;
      worlds.delete(h);
      await w.cleanup();
    },
  );
});

describe('ipvsadm agrees', () => {
  let w: World;
  afterEach(async () => {
    await w.cleanup();
  });

  test('services and destinations we program, as ipvsadm -Ln lists them', async () => {
    w = new World('ipvsadm');
    const { ns, h } = await ipvsNamespace(w, 'a');
    const tcp4 = ipvsService(4, ADDRS[4].vip, 'tcp', 80);
    const udp6 = ipvsService(6, ADDRS[6].vip, 'udp', 53, { scheduler: 'wrr' });
    const sctp4 = ipvsService(4, ADDRS[4].vip2, 'sctp', 3868, { scheduler: 'sh', flags: IPVS_SVC_F_SCHED2 });
    const pers4 = ipvsService(4, ADDRS[4].vip, 'tcp', 443, { flags: IPVS_SVC_F_PERSISTENT, timeout: 10800, netmaskBits: 24 });
    const pers6 = ipvsService(6, ADDRS[6].vip, 'tcp', 443, { flags: IPVS_SVC_F_PERSISTENT, timeout: 600, netmaskBits: 64 });
    for (const s of [tcp4, udp6, sctp4, pers4, pers6]) await h.addService(s);
    await h.addDestination(tcp4, ipvsDestination(ip('203.0.113.1'), 8080));
    await h.addDestination(tcp4, ipvsDestination(ip('203.0.113.2'), 8080, { weight: 0 }));
    await h.addDestination(udp6, ipvsDestination(ip('2001:db8:1::1'), 5353, { weight: 3 }));
    await h.addDestination(sctp4, ipvsDestination(ip('203.0.113.3'), 3868, { forward: 'route' }));
    await h.addDestination(pers4, ipvsDestination(ip('203.0.113.4'), 443, { forward: 'tunnel', upperThreshold: 100, lowerThreshold: 10 }));

    expect(listing(ns)).toEqual([
      'TCP 198.51.100.10:80 rr',
      '-> 203.0.113.1:8080 Masq 1 0 0',
      '-> 203.0.113.2:8080 Masq 0 0 0',
      'TCP 198.51.100.10:443 rr persistent 10800 mask 255.255.255.0',
      '-> 203.0.113.4:443 Tunnel 1 0 0',
      'SCTP 198.51.100.11:3868 sh (sh-port)',
      '-> 203.0.113.3:3868 Route 1 0 0',
      'TCP [2001:db8::10]:443 rr persistent 600 mask 64',
      'UDP [2001:db8::10]:53 wrr',
      '-> [2001:db8:1::1]:5353 Masq 3 0 0',
    ]);
    // --thresholds: upper, lower, persistent connections.
    expect(listing(ns, '--thresholds', '-t', '198.51.100.10:443')).toEqual(['TCP 198.51.100.10:443 rr persistent 10800 mask 255.255.255.0', '-> 203.0.113.4:443 100 10 0 0']);

    await h.updateService({ ...tcp4, scheduler: 'lc' });
    await h.updateDestination(tcp4, ipvsDestination(ip('203.0.113.1'), 8080, { weight: 5 }));
    await h.deleteDestination(tcp4, { address: ip('203.0.113.2'), port: 8080 });
    await h.deleteService(udp6);
    expect(listing(ns, '-t', '198.51.100.10:80')).toEqual(['TCP 198.51.100.10:80 lc', '-> 203.0.113.1:8080 Masq 5 0 0']);
    expect(listing(ns).some((l) => l.startsWith('UDP'))).toBe(false);

    await h.flush();
    expect(listing(ns)).toEqual([]);
  });

  test('timeouts we set, as ipvsadm -Ln --timeout shows them', async () => {
    w = new World('ipvsadm');
    const { ns, h } = await ipvsNamespace(w, 'a');
    expect(ipvsadm(ns, '-Ln', '--timeout').trim()).toBe('Timeout (tcp tcpfin udp): 900 120 300');
    await h.setTimeouts({ tcp: 7200, tcpFin: 15, udp: 30 });
    expect(ipvsadm(ns, '-Ln', '--timeout').trim()).toBe('Timeout (tcp tcpfin udp): 7200 15 30');
  });

  test('what ipvsadm programs, as we read it', async () => {
    w = new World('ipvsadm');
    const { ns, h } = await ipvsNamespace(w, 'a');
    ipvsadm(ns, '-A', '-t', '198.51.100.10:443', '-s', 'wrr', '-p', '300', '-M', '255.255.0.0');
    ipvsadm(ns, '-a', '-t', '198.51.100.10:443', '-r', '203.0.113.1:8443', '-m', '-w', '7', '-x', '50', '-y', '5');
    ipvsadm(ns, '-a', '-t', '198.51.100.10:443', '-r', '203.0.113.2:8443', '-g');
    ipvsadm(ns, '-A', '-u', '[2001:db8::10]:53', '-s', 'sh', '-b', 'sh-port');
    ipvsadm(ns, '-a', '-u', '[2001:db8::10]:53', '-r', '[2001:db8:1::1]:53', '-m');
    ipvsadm(ns, '--set', '100', '20', '40');

    const tcp = ipvsService(4, ip('198.51.100.10'), 'tcp', 443, { scheduler: 'wrr', flags: IPVS_SVC_F_PERSISTENT, timeout: 300, netmaskBits: 16 });
    const udp = ipvsService(6, ip('2001:db8::10'), 'udp', 53, { scheduler: 'sh', flags: IPVS_SVC_F_SCHED2 });
    const byName = (l: { protocol: string }[]) => [...l].sort((a, b) => a.protocol.localeCompare(b.protocol));
    expect(byName(await h.services())).toEqual([tcp, udp]);
    const conns = { activeConns: 0, inactiveConns: 0, persistentConns: 0 };
    const dests = (await h.destinations(tcp)).sort((a, b) => a.address.compare(b.address));
    expect(dests).toEqual([
      { ...ipvsDestination(ip('203.0.113.1'), 8443, { weight: 7, upperThreshold: 50, lowerThreshold: 5 }), ...conns },
      // ipvsadm gives a direct-routing destination the service's port.
      { ...ipvsDestination(ip('203.0.113.2'), 443, { forward: 'route' }), ...conns },
    ]);
    expect(await h.destinations(udp)).toEqual([{ ...ipvsDestination(ip('2001:db8:1::1'), 53), ...conns }]);
    expect(await h.timeouts()).toEqual({ tcp: 100, tcpFin: 20, udp: 40 });
    expect(await h.info()).toEqual({ version: '1.2.1', connTableSize: 4096 });
  });
});
