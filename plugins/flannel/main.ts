// flannel CNI meta plugin executable.
import { runPlugin } from '../skel/index.ts';
import { registerInProcess } from '../skel/invoke.ts';
import { bridgeFuncs } from '../bridge/bridge.ts';
import { hostLocalFuncs } from '../host-local/host-local.ts';
import { flannelFuncs } from './flannel.ts';

// The usual delegate chain is flannel → bridge → host-local. When CNI_PATH
// resolves those types to our own executables they run inside this process
// (same semantics, one Node start instead of three); other plugins, e.g. the
// reference bridge, are executed as usual.
registerInProcess('bridge', bridgeFuncs);
registerInProcess('host-local', hostLocalFuncs);
void runPlugin(flannelFuncs, 'CNI flannel plugin').then((code) => process.exit(code));
