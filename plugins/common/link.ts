// Link helpers every plugin that creates interfaces needs.
import type { Link, NetlinkHandle } from '../../lib/netlink/index.ts';
import { internal } from './errors.ts';

/**
 * Pauses between the looks at the oper state (ms, about 3 s in all): a new
 * veth usually gets its carrier within milliseconds, but the kernel's
 * linkwatch can delay it by up to a second.
 */
const OPER_UP_WAITS: readonly number[] = [5, 20, 50, 200, 500, 1000, 1000];

/**
 * Waits for link `index` to be operationally up (the reference's wait for a
 * bridge port, plugins#468) and returns it as it is then. Fails with
 * INTERNAL "`what` in error state: <state>" when it is not up after the last
 * pause. `sleep` is a seam so tests do not wait.
 */
export async function waitOperUp(h: NetlinkHandle, index: number, sleep: (ms: number) => Promise<void>, what = `link #${index}`): Promise<Link> {
  let link = await h.linkByIndex(index);
  for (const ms of OPER_UP_WAITS) {
    if (link.operState === 'up') return link;
    await sleep(ms);
    link = await h.linkByIndex(index);
  }
  if (link.operState !== 'up') throw internal(`${what} in error state: ${link.operState}`);
  return link;
}
