// The one executable of the four CNI plugins (`bun build --compile`):
// installed once, with bridge, host-local, loopback and flannel as hard
// links or symlinks to it, it runs the plugin it was started as. Only the
// chosen plugin's modules are evaluated (dynamic import).
import { pluginNameOf, unknownNameMessage, type PluginName } from './dispatch.ts';
import { traceMark } from '../../lib/trace.ts';

const mains: Record<PluginName, () => Promise<{ main(): Promise<number> }>> = {
  bridge: () => import('../bridge/main.ts'),
  'host-local': () => import('../host-local/main.ts'),
  loopback: () => import('../loopback/main.ts'),
  flannel: () => import('../flannel/main.ts'),
};

async function run(): Promise<number> {
  traceMark('process start → first line');
  const name = pluginNameOf([process.argv0, process.execPath]);
  if (name === undefined) {
    process.stderr.write(unknownNameMessage(process.argv0));
    return 1;
  }
  const { main } = await mains[name]();
  traceMark(`module evaluation (${name})`);
  return main();
}

void run().then((code) => process.exit(code));
