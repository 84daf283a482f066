// Root suites: refuse to run without root rather than failing confusingly,
// and leave no files behind: the executables under test cache their native
// addons and V8 code caches in /run/kube-netstack; if the run created that
// directory, it is removed again afterwards.
import { existsSync, rmSync } from 'node:fs';

const CACHE_DIR = '/run/kube-netstack';

export default function setup(): () => void {
  if (process.getuid?.() !== 0) {
    throw new Error('the netns test project needs root (it creates network namespaces)');
  }
  const existed = existsSync(CACHE_DIR);
  return () => {
    if (!existed) rmSync(CACHE_DIR, { recursive: true, force: true });
  };
}
