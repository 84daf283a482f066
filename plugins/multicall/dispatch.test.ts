import { describe, expect, it } from 'vitest';
import { PLUGIN_NAMES, pluginNameOf, unknownNameMessage } from './dispatch.ts';

describe('pluginNameOf', () => {
  it('takes the basename of the invoked path', () => {
    expect(pluginNameOf(['/opt/cni/bin/host-local', '/opt/cni/bin/kube-netstack-cni'])).toBe('host-local');
    expect(pluginNameOf(['bridge'])).toBe('bridge');
    expect(pluginNameOf(['./loopback'])).toBe('loopback');
  });

  it('falls back to later candidates (a hard link execPath) when argv0 is not a plugin name', () => {
    expect(pluginNameOf(['kube-netstack-cni', '/opt/cni/bin/flannel'])).toBe('flannel');
    expect(pluginNameOf([undefined, '', '/x/bridge'])).toBe('bridge');
  });

  it('knows exactly the four plugins', () => {
    expect(PLUGIN_NAMES).toEqual(['bridge', 'host-local', 'loopback', 'flannel']);
    for (const n of PLUGIN_NAMES) expect(pluginNameOf([`/a/${n}`])).toBe(n);
    expect(pluginNameOf(['/opt/cni/bin/kube-netstack-cni', '/opt/cni/bin/kube-netstack-cni'])).toBeUndefined();
    expect(pluginNameOf(['/opt/cni/bin/bridge.old', 'Bridge', 'host-local.sh'])).toBeUndefined();
    expect(pluginNameOf([])).toBeUndefined();
  });

  it('the error names the invoked name and the valid ones', () => {
    expect(unknownNameMessage('/usr/local/bin/macvlan')).toBe(
      'kube-netstack CNI plugins: started as "macvlan", which is not a plugin this executable provides. ' +
        'Run it through a hard link or symlink named one of: bridge, host-local, loopback, flannel.\n',
    );
    expect(unknownNameMessage(undefined)).toContain('started as (none),');
  });
});
