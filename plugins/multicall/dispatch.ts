// Which plugin a multi-call executable runs, from the name it was started
// as (busybox style). A compiled Bun binary reports that name in
// process.argv0 for a symlink as well as a hard link; process.execPath is
// the resolved file (a symlink's target), so it only helps for hard links.
import { basename } from 'node:path';

export const PLUGIN_NAMES = ['bridge', 'host-local', 'loopback', 'flannel'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

const isPluginName = (s: string): s is PluginName => (PLUGIN_NAMES as readonly string[]).includes(s);

/** The first candidate path whose basename is a plugin name, e.g. [argv0, execPath]. */
export function pluginNameOf(candidates: readonly (string | undefined)[]): PluginName | undefined {
  for (const c of candidates) {
    if (c === undefined || c === '') continue;
    const name = basename(c);
    if (isPluginName(name)) return name;
  }
  return undefined;
}

/** What an unknown name gets told: the names it answers to and how they are installed. */
export function unknownNameMessage(invokedAs: string | undefined): string {
  const name = invokedAs === undefined || invokedAs === '' ? '(none)' : JSON.stringify(basename(invokedAs));
  return (
    `kube-netstack CNI plugins: started as ${name}, which is not a plugin this executable provides. ` +
    `Run it through a hard link or symlink named one of: ${PLUGIN_NAMES.join(', ')}.\n`
  );
}
