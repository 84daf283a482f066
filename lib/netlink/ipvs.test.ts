// Our IPVS messages against ipvsadm's own, byte for byte. The goldens in
// testdata/ipvs/ were captured from ipvsadm 1.31 on a real ip_vs kernel by
// test/vm/capture-ipvsadm.sh (each file names its command); sequence
// numbers, port ids and the IPVS family id are zeroed there and here.
// Every ipvsadm run resolves the family before each message and asks
// GET_INFO first, so each golden is: controller requests, GET_INFO, then
// the command's own messages.
import { readFileSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { describe, expect, test } from 'vitest';
import { IPAddr, type Family } from '../ip/index.ts';
import * as C from './constants.ts';
import { GENL_ID_CTRL, decodeGenl, encodeGenl, encodeGenlMessage, encodeGetFamily } from './genl.ts';
import { ipvsDestination, ipvsService } from './ipvs-fake.ts';
import { IPVS_SVC_F_PERSISTENT, IPVS_SVC_F_SCHED1, IPVS_SVC_F_SCHED2, type IpvsService } from './ipvs-types.ts';
import { ipvsRequests as R, encodeService, parseDestination, parseService, type IpvsRequest } from './ipvs.ts';
import { decodeAttrs, decodeMsgs, type NlMsg } from './wire.ts';
import { errnoOf } from '../errors.ts';

const DIR = new URL('./testdata/ipvs/', import.meta.url);
const ip = (s: string): IPAddr => IPAddr.mustParse(s);
const V4 = ip('198.51.100.10');
const V6 = ip('2001:db8::10');
const svc = (family: Family, protocol: IpvsService['protocol'], port: number, extra: Partial<IpvsService> = {}): IpvsService =>
  ipvsService(family, family === 4 ? V4 : V6, protocol, port, extra);
const key = (family: Family, protocol: IpvsService['protocol'], port: number) => ({ family, address: family === 4 ? V4 : V6, protocol, port });

interface Golden {
  command: string;
  msgs: Buffer[];
}

function readGolden(name: string): Golden {
  const lines = readFileSync(new URL(`${name}.hex`, DIR), 'utf8').split('\n');
  const command = lines[0]!.replace(/^# /, '');
  const msgs = lines.filter((l) => l !== '' && !l.startsWith('#')).map((l) => Buffer.from(l, 'hex'));
  return { command, msgs };
}

/** Our message for a request, framed as NetlinkConn sends it, with seq, port id and family id 0. */
function ours(r: IpvsRequest): Buffer {
  return encodeGenlMessage(0, r.dump ? C.NLM_F_DUMP : 0, 0, encodeGenl(r.cmd, C.IPVS_GENL_VERSION, r.attrs));
}

/** ipvsadm's command, exactly as IpvsHandle calls would make it (after the GET_INFO every run sends). */
const CASES: Record<string, IpvsRequest[]> = {
  'add-service-tcp4-rr': [R.addService(svc(4, 'tcp', 80))],
  'add-service-udp4-wrr': [R.addService(svc(4, 'udp', 53, { scheduler: 'wrr' }))],
  'add-service-sctp4-sh-flags': [R.addService(svc(4, 'sctp', 3868, { scheduler: 'sh', flags: IPVS_SVC_F_SCHED1 | IPVS_SVC_F_SCHED2 }))],
  'add-service-tcp6-rr': [R.addService(svc(6, 'tcp', 80))],
  'add-service-udp6-mh-flags': [R.addService(svc(6, 'udp', 53, { scheduler: 'mh', flags: IPVS_SVC_F_SCHED1 | IPVS_SVC_F_SCHED2 }))],
  'add-service-sctp6-rr': [R.addService(svc(6, 'sctp', 3868))],
  'add-service-tcp4-persistent': [R.addService(svc(4, 'tcp', 443, { flags: IPVS_SVC_F_PERSISTENT, timeout: 10800, netmaskBits: 24 }))],
  'add-service-tcp6-persistent': [R.addService(svc(6, 'tcp', 443, { scheduler: 'wlc', flags: IPVS_SVC_F_PERSISTENT, timeout: 600, netmaskBits: 64 }))],
  'edit-service-tcp4': [R.updateService(svc(4, 'tcp', 80, { scheduler: 'wrr' }))],
  'edit-service-tcp6-persistent': [R.updateService(svc(6, 'tcp', 80, { scheduler: 'sh', flags: IPVS_SVC_F_PERSISTENT, timeout: 300 }))],
  'delete-service-tcp4': [R.deleteService(key(4, 'tcp', 80))],
  'delete-service-udp6': [R.deleteService(key(6, 'udp', 53))],
  'add-dest-tcp4-masq': [R.addDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.1'), 8080))],
  'add-dest-tcp4-thresholds': [R.addDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.2'), 8080, { weight: 5, upperThreshold: 100, lowerThreshold: 10 }))],
  'add-dest-tcp4-route': [R.addDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.3'), 80, { forward: 'route' }))],
  'add-dest-tcp4-tunnel': [R.addDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.3'), 80, { forward: 'tunnel', weight: 2 }))],
  'add-dest-udp4-masq': [R.addDestination(key(4, 'udp', 53), ipvsDestination(ip('203.0.113.1'), 53))],
  'add-dest-tcp6-masq': [R.addDestination(key(6, 'tcp', 80), ipvsDestination(ip('2001:db8:1::1'), 8080))],
  'edit-dest-tcp4-weight0': [R.updateDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.1'), 8080, { weight: 0 }))],
  'delete-dest-tcp4': [R.deleteDestination(key(4, 'tcp', 80), { address: ip('203.0.113.1'), port: 8080 })],
  'delete-dest-tcp6': [R.deleteDestination(key(6, 'tcp', 80), { address: ip('2001:db8:1::1'), port: 8080 })],
  'set-timeouts': [R.setTimeouts({ tcp: 7200, tcpFin: 15, udp: 30 })],
  'get-timeouts': [R.timeouts()],
  flush: [R.flush()],
  'list-empty': [R.services()],
  // ipvsadm -Ln dumps the services, then the destinations of each (it sorts them; the kernel listed the IPv4 one first).
  'list-services': [R.services(), R.destinations(key(4, 'tcp', 80)), R.destinations(key(6, 'tcp', 80))],
  'get-service-tcp4': [R.getService(key(4, 'tcp', 80)), R.destinations(key(4, 'tcp', 80))],
};

describe('IPVS messages, byte-exact with ipvsadm 1.31', () => {
  test('every golden has a case and every case a golden', () => {
    const files = readdirSync(DIR)
      .filter((f) => f.endsWith('.hex'))
      .map((f) => f.slice(0, -4))
      .sort();
    expect(files).toEqual(Object.keys(CASES).sort());
  });

  test.each(Object.keys(CASES))('%s', (name) => {
    const g = readGolden(name);
    expect(g.command).toMatch(/^ipvsadm /);
    const ctrl = g.msgs.filter((m) => m.readUInt16LE(4) === GENL_ID_CTRL);
    const ipvs = g.msgs.filter((m) => m.readUInt16LE(4) !== GENL_ID_CTRL);
    // The family is resolved as libnl resolves it.
    const resolve = encodeGenlMessage(GENL_ID_CTRL, 0, 0, encodeGetFamily(C.IPVS_GENL_NAME)).toString('hex');
    expect(ctrl.length).toBeGreaterThan(0);
    for (const m of ctrl) expect(m.toString('hex')).toBe(resolve);
    expect(ipvs.map((m) => m.toString('hex'))).toEqual([R.info(), ...CASES[name]!].map((r) => ours(r).toString('hex')));
  });
});

/** The service and destination nests of a golden's command message. */
function commandNests(name: string): { service?: ReturnType<typeof decodeAttrs>; dest?: ReturnType<typeof decodeAttrs> } {
  const g = readGolden(name);
  const last = g.msgs[g.msgs.length - 1]!;
  const [m] = decodeMsgs(last) as [NlMsg];
  const gm = decodeGenl(m);
  const service = gm.attrs.nested(C.IPVS_CMD_ATTR_SERVICE);
  const dest = gm.attrs.nested(C.IPVS_CMD_ATTR_DEST);
  return { ...(service ? { service } : {}), ...(dest ? { dest } : {}) };
}

describe('reading what ipvsadm wrote', () => {
  test('service nests parse back to the services (the kernel dumps the same layout)', () => {
    expect(parseService(commandNests('add-service-tcp4-persistent').service!)).toEqual(svc(4, 'tcp', 443, { flags: IPVS_SVC_F_PERSISTENT, timeout: 10800, netmaskBits: 24 }));
    expect(parseService(commandNests('add-service-udp6-mh-flags').service!)).toEqual(svc(6, 'udp', 53, { scheduler: 'mh', flags: IPVS_SVC_F_SCHED1 | IPVS_SVC_F_SCHED2 }));
    expect(parseService(commandNests('add-service-sctp4-sh-flags').service!)).toEqual(svc(4, 'sctp', 3868, { scheduler: 'sh', flags: IPVS_SVC_F_SCHED1 | IPVS_SVC_F_SCHED2 }));
  });

  test('destination nests parse back to the destinations', () => {
    const conns = { activeConns: 0, inactiveConns: 0, persistentConns: 0 };
    expect(parseDestination(commandNests('add-dest-tcp4-thresholds').dest!, 4)).toEqual({
      ...ipvsDestination(ip('203.0.113.2'), 8080, { weight: 5, upperThreshold: 100, lowerThreshold: 10 }),
      ...conns,
    });
    expect(parseDestination(commandNests('add-dest-tcp6-masq').dest!, 6)).toEqual({ ...ipvsDestination(ip('2001:db8:1::1'), 8080), ...conns });
    expect(parseDestination(commandNests('add-dest-tcp4-tunnel').dest!, 4).forward).toBe('tunnel');
  });
});

describe('what cannot be encoded is refused before it is sent (EINVAL)', () => {
  const E = constants.errno;
  const errnoOfCall = (fn: () => unknown): number | undefined => {
    try {
      fn();
    } catch (err) {
      return errnoOf(err);
    }
    return undefined;
  };
  test.each([
    ['an IPv6 address in an IPv4 service', () => R.addService({ ...svc(4, 'tcp', 80), address: V6 })],
    ['a port above 65535', () => R.addService(svc(4, 'tcp', 65536))],
    ['an IPv4 netmask of /33', () => R.addService(svc(4, 'tcp', 80, { netmaskBits: 33 }))],
    ['an empty scheduler name', () => encodeService(svc(4, 'tcp', 80, { scheduler: '' }))],
    ['a 16-byte scheduler name', () => encodeService(svc(4, 'tcp', 80, { scheduler: 'x'.repeat(16) }))],
    ['a negative weight', () => R.addDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.1'), 80, { weight: -1 }))],
    ['a destination family that is not its address family', () => R.addDestination(key(4, 'tcp', 80), ipvsDestination(ip('203.0.113.1'), 80, { family: 6 }))],
    ['a negative timeout', () => R.setTimeouts({ tcp: -1, tcpFin: 0, udp: 0 })],
  ])('%s', (_what, fn) => {
    expect(errnoOfCall(fn)).toBe(E.EINVAL);
  });
});
