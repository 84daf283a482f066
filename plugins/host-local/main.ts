// host-local IPAM plugin executable.
import { runPlugin } from '../skel/index.ts';
import { hostLocalFuncs } from './host-local.ts';

void runPlugin(hostLocalFuncs, 'CNI host-local plugin').then((code) => process.exit(code));
