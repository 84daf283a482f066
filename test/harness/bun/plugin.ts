// Runs one CNI plugin from its TypeScript sources, named by argv[2], the
// CNI way (CNI_* env, config on stdin, result on stdout): under Bun with
// `bun --preload lib/runtime/bun-preload.ts`, or bundled for Node, so
// test/netns/runtime-bun.test.ts can compare the two runtimes' results.
const mains: Record<string, () => Promise<{ main(): Promise<number> }>> = {
  bridge: () => import('../../../plugins/bridge/main.ts'),
  'host-local': () => import('../../../plugins/host-local/main.ts'),
  loopback: () => import('../../../plugins/loopback/main.ts'),
  flannel: () => import('../../../plugins/flannel/main.ts'),
};

const load = mains[process.argv[2] ?? ''];
if (!load) {
  process.stderr.write(`usage: plugin.ts <${Object.keys(mains).join('|')}>\n`);
  process.exit(2);
}
const { main } = await load();
process.exit(await main());
