// flannel CNI meta plugin executable.
import { runPlugin } from '../skel/index.ts';
import { flannelFuncs } from './flannel.ts';

void runPlugin(flannelFuncs, 'CNI flannel plugin').then((code) => process.exit(code));
