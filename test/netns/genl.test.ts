// Generic netlink against this machine's kernel, in a namespace of our own:
// family resolution through the controller, and openIpvs where the kernel
// has no IPVS (this machine's 6.18 has no ip_vs; the test VM's kernel has it,
// see test/vm/suites/ipvs-netlink.test.ts).
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { World } from '../harness/world.ts';
import { CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_CMD_GETFAMILY, GENL_ID_CTRL, GenlConn, GenlFamilyNotFoundError } from '../../lib/netlink/genl.ts';
import { attr, cstr } from '../../lib/netlink/wire.ts';
import { NoIpvsError, openIpvs } from '../../lib/netlink/ipvs.ts';
import { codeOf } from '../../lib/errors.ts';

describe('generic netlink', () => {
  const w = new World('genl');
  let ns: string;
  beforeAll(() => {
    ns = w.netns('a');
  });
  afterAll(() => w.cleanup());

  test('resolves the controller itself by name: id, version, attributes, multicast groups', async () => {
    const g = await GenlConn.open('nlctrl', { netns: ns });
    try {
      expect(g.family.id).toBe(GENL_ID_CTRL);
      expect(g.family.name).toBe('nlctrl');
      expect(g.family.version).toBeGreaterThanOrEqual(1);
      expect(g.family.hdrSize).toBe(0);
      expect(g.family.mcastGroups.get('notify')).toBeGreaterThan(0);
    } finally {
      g.close();
    }
  });

  test('a family the kernel does not have: GenlFamilyNotFoundError naming it', async () => {
    const err = await GenlConn.open('KN-NO-SUCH', { netns: ns }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GenlFamilyNotFoundError);
    expect(codeOf(err)).toBe('GENL_FAMILY_NOT_FOUND');
    expect((err as Error).message).toContain('"KN-NO-SUCH"');
  });

  test('1,000 requests made in one tick all complete (the window keeps the answers within the receive buffer)', async () => {
    const g = await GenlConn.open('nlctrl', { netns: ns });
    try {
      const answers = await Promise.all(
        Array.from({ length: 1000 }, () => g.request(CTRL_CMD_GETFAMILY, [attr(CTRL_ATTR_FAMILY_NAME, cstr('nlctrl'))], 'genl resolve nlctrl')),
      );
      expect(answers.every((msgs) => msgs[0]?.attrs.u16(CTRL_ATTR_FAMILY_ID) === GENL_ID_CTRL)).toBe(true);
      expect(g.requests).toBe(1000);
    } finally {
      g.close();
    }
  });

  // The root namespace shows /proc/sys/net/ipv4/vs only when ip_vs is loaded.
  const kernelHasIpvs = existsSync('/proc/sys/net/ipv4/vs');
  test(`openIpvs: ${kernelHasIpvs ? 'opens (this kernel has ip_vs)' : 'ENOIPVS on a kernel without ip_vs'}`, async () => {
    const res = await openIpvs({ netns: ns }).then(
      (h) => h,
      (e: unknown) => e,
    );
    if (kernelHasIpvs) {
      expect(res).not.toBeInstanceOf(Error);
      const h = res as Awaited<ReturnType<typeof openIpvs>>;
      expect(await h.services()).toEqual([]);
      h.close();
    } else {
      expect(res).toBeInstanceOf(NoIpvsError);
      expect(codeOf(res)).toBe('ENOIPVS');
      expect((res as Error).message).toMatch(/IPVS is not available.*modprobe ip_vs/);
    }
  });
});
