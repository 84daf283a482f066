// `bun --preload lib/runtime/bun-preload.ts <entry>.ts` runs our TypeScript
// sources uncompiled on Bun with the Bun side of the runtime seam: it
// resolves lib/runtime/node.ts to lib/runtime/bun.ts, as the Bun build does
// for the compiled plugins, so Node's native addons are never loaded.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface BunPluginBuilder {
  onResolve(opts: { filter: RegExp }, cb: (args: { path: string; importer: string }) => { path: string } | undefined): void;
}
declare const Bun: { plugin(p: { name: string; setup(build: BunPluginBuilder): void }): void };

const here = dirname(fileURLToPath(import.meta.url));
const BUN_IMPL = join(here, 'bun.ts');

Bun.plugin({
  name: 'kn-runtime-bun',
  setup(build) {
    build.onResolve({ filter: /runtime\/node\.ts$/ }, (args) => {
      const target = args.path.startsWith('.') ? join(dirname(args.importer), args.path) : args.path;
      return target === join(here, 'node.ts') ? { path: BUN_IMPL } : undefined;
    });
  },
});
