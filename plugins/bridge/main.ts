import { runPlugin } from '../skel/index.ts';
import { registerInProcess } from '../skel/invoke.ts';
import { hostLocalFuncs } from '../host-local/host-local.ts';
import { bridgeFuncs } from './bridge.ts';

// When CNI_PATH resolves `host-local` to our own executable, run it inside
// this process instead of paying a second Node start.
registerInProcess('host-local', hostLocalFuncs);
void runPlugin(bridgeFuncs, 'CNI bridge plugin').then((code) => process.exit(code));
