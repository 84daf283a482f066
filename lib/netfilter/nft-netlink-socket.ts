// The blocking NETLINK_NETFILTER socket nf_tables batches go through, over
// the daemon's libc (koffi): lib/runtime/blocking-netlink.ts, with
// NETLINK_CAP_ACK (an error carries only the failing message's header, not a
// copy of a megabyte-sized batch). Why blocking and not the event-driven
// `netlink` addon: a batch must be ONE sendmsg, tens of megabytes at 10,000
// services, and only SO_SNDBUFFORCE takes that.
import { blockingNetlinkSocket } from '../runtime/blocking-netlink.ts';
import { libc } from '../runtime/node.ts';

export const BlockingNetlinkSocket = blockingNetlinkSocket(libc, {
  // Answers to a batch arrive before sendto returns; this only guards against a kernel that never answers.
  recvTimeoutS: 60,
  capAck: true,
  noMulticast: 'the blocking nf_tables socket takes no subscriptions',
});
