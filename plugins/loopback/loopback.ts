// The loopback plugin: brings `lo` up in the container's namespace (ADD),
// down again (DEL), and checks it is up (CHECK). CNI_IFNAME is ignored, as
// in the reference. Unlike the reference, results are converted properly to
// old spec versions (0.2.0 gets `ip4`/`ip6`, 0.3.x/0.4.0 get `version`).
import { getPrevResult } from '../skel/args.ts';
import type { CmdArgs, PluginFuncs, Result } from '../skel/types.ts';
import { NetError } from '../../lib/errors.ts';
import { Handle } from '../../lib/netlink/index.ts';
import { NetnsNotFoundError } from '../../lib/netns/index.ts';

const LO = 'lo';

async function add(args: CmdArgs): Promise<Result> {
  const h = Handle.open({ netns: args.netns });
  try {
    const lo = await h.linkByName(LO);
    await h.linkSetUp(lo.index);
    const addrs = await h.addrList({ index: lo.index });
    const bad = addrs.find((a) => !a.address.addr.isLoopback());
    if (bad) throw new NetError('LOOPBACK_NOT_LOOPBACK', 'loopback interface found with non-loopback address', { details: bad.address.toString() });
    const prev = getPrevResult(args);
    if (prev) return prev;
    const result: Result = { interfaces: [{ name: LO, mac: '00:00:00:00:00:00', sandbox: args.netns }], ips: [] };
    for (const family of [4, 6] as const) {
      const first = addrs.find((a) => a.family === family);
      if (first) result.ips!.push({ interface: 0, address: first.address.toString() });
    }
    return result;
  } finally {
    h.close();
  }
}

async function del(args: CmdArgs): Promise<void> {
  if (args.netns === '') return;
  let h: Handle;
  try {
    h = Handle.open({ netns: args.netns });
  } catch (err) {
    // The namespace is already gone: nothing left to undo.
    if (err instanceof NetnsNotFoundError) return;
    throw err;
  }
  try {
    const lo = await h.linkByName(LO);
    await h.linkSetDown(lo.index);
  } finally {
    h.close();
  }
}

async function check(args: CmdArgs): Promise<void> {
  const h = Handle.open({ netns: args.netns });
  try {
    const lo = await h.linkByName(LO);
    if (!lo.up) throw new NetError('LOOPBACK_DOWN', 'loopback interface is down');
  } finally {
    h.close();
  }
}

export const loopbackFuncs: PluginFuncs = { add, del, check };
