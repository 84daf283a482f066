// host-local IPAM plugin: wired here, started by plugins/multicall/main.ts.
import { VERSION } from '../../lib/version.ts';
import { runPlugin } from '../skel/index.ts';
import { hostLocalFuncs } from './host-local.ts';

export function main(): Promise<number> {
  return runPlugin(hostLocalFuncs, `CNI host-local plugin ${VERSION}`);
}
