// Test fixture: a tiny IPAM plugin used to compare a spawned Node plugin with
// the same plugin run in-process by the delegation code.
import { CniError } from '../types.ts';
import type { PluginFuncs } from '../types.ts';

export const fakeIpam: PluginFuncs = {
  add: async (args) => {
    if (args.containerId === 'fail') throw new CniError(11, 'pool busy', `container ${args.containerId}`);
    if (args.containerId === 'crash') throw new Error('unexpected <crash>');
    return {
      ips: [{ address: '10.1.0.9/24', gateway: '10.1.0.1' }, { address: '2001:db8::9/64' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400 }],
      dns: { nameservers: ['10.1.0.10'] },
    };
  },
  del: async () => undefined,
  check: async () => undefined,
};
