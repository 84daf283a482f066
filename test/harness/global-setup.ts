// Root suites: refuse to run without root rather than failing confusingly,
// and leave no files behind: the daemons under test (dist/bin/flanneld,
// kube-proxy, netpolicy) write their embedded native addons to
// /run/kube-netstack (lib/sys/native.ts); if the run created that
// directory, it is removed again afterwards. The CNI plugins write nothing
// there.
import { existsSync, rmSync } from 'node:fs';

const ADDON_DIR = '/run/kube-netstack';

export default function setup(): () => void {
  if (process.getuid?.() !== 0) {
    throw new Error('the netns test project needs root (it creates network namespaces)');
  }
  const existed = existsSync(ADDON_DIR);
  return () => {
    if (!existed) rmSync(ADDON_DIR, { recursive: true, force: true });
  };
}
