import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs anywhere without root; `netns` needs root and
// creates its own network namespaces. Root suites run one file at a time:
// they share the machine's two cores and the kernel's netns machinery.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['lib/**/*.test.ts', 'plugins/**/*.test.ts', 'flanneld/**/*.test.ts', 'kube-proxy/**/*.test.ts', 'netpolicy/**/*.test.ts', 'test/**/*.unit.test.ts'],
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
    ],
  },
});
