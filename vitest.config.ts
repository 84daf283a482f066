import { defineConfig } from 'vitest/config';

// Projects: `unit` runs anywhere without root; `netns` needs root and
// creates its own network namespaces. Root suites run one file at a time:
// they share the machine's two cores and the kernel's netns machinery.
// Daemons started by the suites log JSON (their default is klog text), which
// the harnesses parse; set here, before the workers fork, so children inherit it.
process.env['KN_LOG_FORMAT'] ??= 'json';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['lib/**/*.test.ts', 'plugins/**/*.test.ts', 'flanneld/**/*.test.ts', 'kube-proxy/**/*.test.ts', 'netpolicy/**/*.test.ts', 'netstack/**/*.test.ts', 'test/**/*.unit.test.ts', 'test/deploy/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
        },
      },
      {
        test: {
          name: 'netns',
          include: ['test/netns/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
          globalSetup: ['test/harness/global-setup.ts'],
        },
      },
      {
        // Root: the whole stack through dist/bin/netstack (npm run build first).
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 120_000,
          globalSetup: ['test/harness/global-setup.ts'],
        },
      },
      // The test VM (test/vm): outside it, `vm` boots one VM and runs the
      // `vm-guest` project inside (every test/vm/suites/*.test.ts, on a
      // kernel with ip_vs, sctp, VLAN filtering, dummy); inside it
      // (KN_IN_VM=1), only `vm-guest` exists. Emulated CPU: long timeouts.
      process.env['KN_IN_VM'] === '1'
        ? {
            test: {
              name: 'vm-guest',
              include: ['test/vm/suites/**/*.test.ts'],
              environment: 'node',
              pool: 'forks',
              fileParallelism: false,
              testTimeout: 300_000,
              hookTimeout: 300_000,
              globalSetup: ['test/harness/global-setup.ts'],
            },
          }
        : {
            test: {
              name: 'vm',
              include: ['test/vm/vm.test.ts'],
              environment: 'node',
              pool: 'forks',
              testTimeout: 60_000,
              // After the other projects: the emulated VM keeps both cores
              // busy for minutes, which would slow the root suites beside it.
              sequence: { groupOrder: 1 },
            },
          },
    ],
  },
});
