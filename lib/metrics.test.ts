import { describe, expect, it } from 'vitest';
import { newRegistry } from './metrics.ts';
import { VERSION } from './version.ts';

describe('newRegistry', () => {
  it('carries the build info of the component when named', async () => {
    const text = await newRegistry({ component: 'flanneld' }).metrics();
    expect(text).toContain(`kube_netstack_build_info{component="flanneld",version="${VERSION}",node_version="${process.version}"} 1`);
    expect(await newRegistry().metrics()).not.toContain('kube_netstack_build_info');
  });
});
