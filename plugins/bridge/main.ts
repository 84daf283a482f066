// bridge plugin: wired here, started by plugins/multicall/main.ts.
import { VERSION } from '../../lib/version.ts';
import { runPlugin } from '../skel/index.ts';
import { registerInProcess } from '../skel/invoke.ts';
import { hostLocalFuncs } from '../host-local/host-local.ts';
import { bridgeFuncs } from './bridge.ts';

export function main(): Promise<number> {
  // When CNI_PATH resolves `host-local` to this same executable, run it
  // inside this process instead of paying a second process start.
  registerInProcess('host-local', hostLocalFuncs);
  return runPlugin(bridgeFuncs, `CNI bridge plugin ${VERSION}`);
}
