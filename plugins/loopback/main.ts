import { runPlugin } from '../skel/index.ts';
import { loopbackFuncs } from './loopback.ts';

void runPlugin(loopbackFuncs, 'CNI loopback plugin').then((code) => process.exit(code));
