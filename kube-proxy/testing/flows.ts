// upstream's runPacketFlowTests (pkg/proxy/iptables/proxier_test.go) over our
// tracer: a table of packets and the output string / masquerade flag each
// must produce.
import { expect } from 'vitest';
import { formatTrace, IPTablesTracer, type Packet } from '../trace/iptables.ts';

/** upstream's packetFlowTest. */
export interface Flow {
  readonly name: string;
  readonly sourceIP: string;
  readonly destIP: string;
  readonly destPort: number;
  readonly protocol?: string;
  readonly output: string;
  readonly masq?: boolean;
}

/** upstream's testNodeIPs. */
export const testNodeIPs = ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'];

/** runPacketFlowTests: each flow's output string and masquerade flag. */
export function runPacketFlows(ruleset: string, nodeIPs: readonly string[], flows: readonly Flow[]): void {
  const tracer = new IPTablesTracer(ruleset, nodeIPs);
  for (const f of flows) {
    const pkt: Packet = { source: f.sourceIP, destination: f.destIP, port: f.destPort, protocol: f.protocol ?? 'tcp' };
    const r = tracer.trace(pkt);
    expect({ name: f.name, output: r.output, masq: r.masquerade }, formatTrace(pkt, r)).toEqual({ name: f.name, output: f.output, masq: f.masq ?? false });
  }
}

