// Test world: named network namespaces with a per-run random prefix, always
// removed again (also when a test fails). Nothing here touches the machine's
// own namespace.
import { randomBytes } from 'node:crypto';
import { createNamedNetns, deleteNamedNetns, NETNS_RUN_DIR } from '../../lib/netns/index.ts';
import { Handle } from '../../lib/netlink/index.ts';

export const isRoot = process.getuid?.() === 0;

export class World {
  readonly prefix: string;
  private readonly names: string[] = [];
  private readonly handles: Handle[] = [];
  private readonly cleanups: (() => void | Promise<void>)[] = [];

  constructor(tag = 't') {
    this.prefix = `kn${tag}${randomBytes(3).toString('hex')}`;
  }

  /** Creates /var/run/netns/<prefix>-<name> and returns its path. */
  netns(name: string): string {
    const full = `${this.prefix}-${name}`;
    const path = createNamedNetns(full);
    this.names.push(full);
    return path;
  }

  nsPath(name: string): string {
    return `${NETNS_RUN_DIR}/${this.prefix}-${name}`;
  }

  /** A netlink handle in the namespace, closed at cleanup. */
  handle(nsPath: string): Handle {
    const h = Handle.open({ netns: nsPath });
    this.handles.push(h);
    return h;
  }

  onCleanup(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    this.cleanups.length = 0;
    for (const h of this.handles) h.close();
    this.handles.length = 0;
    for (const n of this.names.reverse()) {
      try {
        deleteNamedNetns(n);
      } catch (err) {
        errors.push(err);
      }
    }
    this.names.length = 0;
    if (errors.length) throw new AggregateError(errors, 'world cleanup failed');
  }
}
