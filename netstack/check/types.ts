// The vocabulary of `netstack check`: a probe (who sends what to where, and
// what the model says should happen), what the kernel did, and a row of the
// result (both, and whether they agree).
import type { Family } from '../../lib/ip/index.ts';

export type ProbeProtocol = 'ICMP' | 'TCP' | 'UDP';

/**
 * The four parts of the matrix:
 * - icmp: echo from a pod to each pod on another node (the overlay, and policy for a protocol without ports);
 * - pod: a pod to each declared port of every other pod (the policy matrix);
 * - service: a pod to each ClusterIP:port (kube-proxy, then policy at the endpoint);
 * - nodeport: the external host to each node's IP:nodePort.
 */
export type Section = 'icmp' | 'pod' | 'service' | 'nodeport';
export const SECTIONS: readonly Section[] = ['icmp', 'pod', 'service', 'nodeport'];

/**
 * What should happen: `open` (a TCP handshake, a UDP echo, an ICMP echo reply),
 * `refused` (TCP RST or ICMP port unreachable: a Service without endpoints),
 * `blocked` (no answer: a policy drops it), or `either` (a Service whose
 * endpoints the policies treat differently: the answer depends on the endpoint
 * kube-proxy picks).
 */
export type Expected = 'open' | 'refused' | 'blocked' | 'either';

/**
 * What happened: `open`, `refused`, `timeout` (no answer in time),
 * `unreachable` (ICMP host/net/admin unreachable, EHOSTUNREACH), or `error`
 * (the probe could not be made: no such netns, no address to send from).
 */
export type Observed = 'open' | 'refused' | 'timeout' | 'unreachable' | 'error';

export interface Expectation {
  readonly outcome: Expected;
  /** One line for a human: why (the model's reasons, the endpoints). */
  readonly reason: string;
}

export interface ProbeSource {
  /** "frontend/web-0", or "external". */
  readonly label: string;
  /** The network namespace the probe's socket is opened in. */
  readonly netns: string;
  /** The address the source sends from (for the report; the kernel picks it). */
  readonly ip: string;
}

export interface ProbeTarget {
  readonly ip: string;
  /** 0 for ICMP. */
  readonly port: number;
  readonly protocol: ProbeProtocol;
}

export interface Probe {
  /** Unique within one check; also the ICMP sequence number and the UDP payload tag. */
  readonly id: number;
  readonly section: Section;
  readonly family: Family;
  readonly from: ProbeSource;
  readonly to: ProbeTarget;
  /** The matrix row (the destination: pod, pod port, service port, node port) and column (the source). */
  readonly row: string;
  readonly column: string;
  readonly expect: Expectation;
}

export interface ProbeResult {
  readonly observed: Observed;
  /** errno name, ICMP type/code, or the error message. */
  readonly detail?: string;
  /** Round-trip (or time to give up) in ms. */
  readonly ms: number;
  /** The probe ran twice: the first try gave no answer where one was expected. */
  readonly retried?: boolean;
}

export interface Row {
  readonly probe: Probe;
  readonly result: ProbeResult;
  readonly match: boolean;
}

/** Whether an observation is what was expected. A policy drop gives no answer; a reject (admin prohibited) counts as blocked too. */
export function matches(expected: Expected, observed: Observed): boolean {
  switch (expected) {
    case 'open':
      return observed === 'open';
    case 'refused':
      return observed === 'refused';
    case 'blocked':
      return observed === 'timeout' || observed === 'unreachable';
    case 'either':
      return observed === 'open' || observed === 'timeout' || observed === 'unreachable';
  }
}
