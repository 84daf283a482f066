// flannel CNI meta plugin: wired here, started by plugins/multicall/main.ts.
import { VERSION } from '../../lib/version.ts';
import { runPlugin } from '../skel/index.ts';
import { registerInProcess } from '../skel/invoke.ts';
import { bridgeFuncs } from '../bridge/bridge.ts';
import { hostLocalFuncs } from '../host-local/host-local.ts';
import { flannelFuncs } from './flannel.ts';

export function main(): Promise<number> {
  // The usual delegate chain is flannel → bridge → host-local. When CNI_PATH
  // resolves those types to this same executable they run inside this
  // process (same semantics, one process start instead of three); other
  // plugins, e.g. the reference bridge, are executed as usual.
  registerInProcess('bridge', bridgeFuncs);
  registerInProcess('host-local', hostLocalFuncs);
  return runPlugin(flannelFuncs, `CNI flannel plugin ${VERSION}`);
}
