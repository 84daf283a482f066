// nftables: the transaction builder (nft-tx.ts), the `nft -j list` parser
// (nft-json.ts), the runner over the real `nft` below, and FakeNft for tests
// (nft-fake.ts). One transaction is one `nft -f -` process: all or nothing.
import { run, runOptions, type RunOptions } from '../exec.ts';
import { parseNftJson, type NftTableInfo } from './nft-json.ts';
import type { NftFamily, NftTransaction } from './nft-tx.ts';

export * from './nft-tx.ts';
export * from './nft-json.ts';
export { FakeNft } from './nft-fake.ts';

/** What the CNI plugins and flanneld need: apply a transaction, list one table. */
export interface Nft {
  /** Runs one transaction (`nft -f -`); all or nothing. */
  run(tx: NftTransaction | string): Promise<void>;
  /** Lists one table, or undefined if it does not exist. */
  list(family: NftFamily, table: string): Promise<NftTableInfo | undefined>;
}

/** What a reconciling daemon needs on top: check mode and the whole ruleset. */
export interface NftRunner extends Nft {
  /** Validates a transaction against the current state (`nft -c -f -`) without applying it. */
  check(tx: NftTransaction | string): Promise<void>;
  /** Every table with its chains, rules, sets and maps (`nft -j list ruleset`). */
  listRuleset(): Promise<NftTableInfo[]>;
}

export interface RealNftOptions {
  /** Path of a network namespace to run `nft` in (via nsenter): tests and tools. */
  netns?: string;
  timeoutMs?: number;
}

export class RealNft implements NftRunner {
  constructor(private readonly opts: RealNftOptions = {}) {}
  /** The network namespace nft runs in (undefined: the current one). */
  get netns(): string | undefined {
    return this.opts.netns;
  }
  private runOpts(input?: string): RunOptions {
    return runOptions(this.opts, input);
  }
  async run(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    if (text === '') return;
    await run('nft', ['-f', '-'], this.runOpts(text));
  }
  async check(tx: NftTransaction | string): Promise<void> {
    const text = typeof tx === 'string' ? tx : tx.render();
    if (text === '') return;
    await run('nft', ['-c', '-f', '-'], this.runOpts(text));
  }
  async list(family: NftFamily, table: string): Promise<NftTableInfo | undefined> {
    // Ask for the family's table names first: absent tables (the common case
    // for callers that tear down "just in case") then cost one process, and a
    // failing listing never has to be told apart by its message.
    const { stdout: names } = await run('nft', ['-j', 'list', 'tables', family], this.runOpts());
    if (!parseNftJson(names).some((t) => t.name === table)) return undefined;
    const { stdout } = await run('nft', ['-j', 'list', 'table', family, table], this.runOpts());
    return parseNftJson(stdout).find((t) => t.family === family && t.name === table) ?? { family, name: table, chains: [], rules: [], sets: [] };
  }
  async listRuleset(): Promise<NftTableInfo[]> {
    const { stdout } = await run('nft', ['-j', 'list', 'ruleset'], this.runOpts());
    return parseNftJson(stdout);
  }
}
