// loopback plugin: wired here, started by plugins/multicall/main.ts.
import { VERSION } from '../../lib/version.ts';
import { runPlugin } from '../skel/index.ts';
import { loopbackFuncs } from './loopback.ts';

export function main(): Promise<number> {
  return runPlugin(loopbackFuncs, `CNI loopback plugin ${VERSION}`);
}
