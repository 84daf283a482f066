// Link kinds this machine's kernel lacks, through our netlink Handle on the
// test VM's kernel: the dummy link (kube-proxy IPVS mode's kube-ipvs0 is
// one), created with attributes, holding addresses, and gone again.
import { afterAll, describe, expect, test } from 'vitest';
import { World } from '../../harness/world.ts';
import { LinkNotFoundError } from '../../../lib/netlink/index.ts';
import { IPPrefix } from '../../../lib/ip/index.ts';

describe('link kinds (VM kernel)', () => {
  const w = new World('vmnk');
  afterAll(() => w.cleanup());

  test('dummy links: created with kind, MTU and up; hold addresses; deleted', async () => {
    const h = w.handle(w.netns('d'));
    await h.linkAdd({ name: 'dum0', kind: 'dummy', mtu: 9000, up: true });
    const d = await h.linkByName('dum0');
    expect(d.kind).toBe('dummy');
    expect(d.mtu).toBe(9000);
    expect(d.up).toBe(true);
    await h.addrAdd(d.index, { address: IPPrefix.mustParse('192.0.2.10/32') });
    await h.addrAdd(d.index, { address: IPPrefix.mustParse('2001:db8::10/128'), noDad: true });
    const addrs = (await h.addrList({ index: d.index })).map((a) => a.address.toString()).filter((a) => !a.startsWith('fe80:'));
    expect(addrs.sort()).toEqual(['192.0.2.10/32', '2001:db8::10/128']);
    await h.linkDel(d.index);
    await expect(h.linkByName('dum0')).rejects.toBeInstanceOf(LinkNotFoundError);
  });
});
