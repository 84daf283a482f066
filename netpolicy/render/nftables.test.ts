// Golden files of the nftables renderer (testdata/*.nft; the kernel checks
// them in check-syntax.sh), and the properties of incremental updates.
import { describe, expect, test } from 'vitest';
import { fullCases, updateCases } from './cases.ts';
import { diffStates, nftState, renderFull, renderUpdate } from './nftables.ts';

describe('full render (golden)', () => {
  test.each(fullCases())('$name', async ({ name, plan, logDenied }) => {
    await expect(renderFull(plan, { logDenied })).toMatchFileSnapshot(`testdata/${name}.full.nft`);
  });
});

describe('incremental update (golden)', () => {
  test.each(updateCases())('$name', async ({ name, prev, next }) => {
    // prev/next full renders sit beside the update so the kernel check can
    // apply prev + update and compare the result with next.
    await expect(renderFull(prev)).toMatchFileSnapshot(`testdata/${name}.prev.nft`);
    await expect(renderFull(next)).toMatchFileSnapshot(`testdata/${name}.next.nft`);
    await expect(renderUpdate(prev, next)).toMatchFileSnapshot(`testdata/${name}.update.nft`);
  });
});

describe('update properties', () => {
  const [added, deleted, relabelled, policyChanged] = updateCases();

  test('no change, no transaction', () => {
    expect(renderUpdate(added!.prev, added!.prev)).toBe('');
  });

  test('never flushes or deletes the table', () => {
    for (const c of updateCases()) {
      const tx = renderUpdate(c.prev, c.next);
      expect(tx).not.toMatch(/(flush|delete) table/);
      expect(tx).not.toMatch(/flush ruleset/);
    }
  });

  test('a new pod of an existing group only adds elements', () => {
    const tx = renderUpdate(added!.prev, added!.next);
    expect(tx.split('\n').filter(Boolean).every((l) => l.startsWith('add element '))).toBe(true);
    expect(tx).toMatch(/add element inet netpolicy ingress_v4 \{ 10\.244\.1\.12 : jump grp_in_/);
  });

  test('a deleted pod only deletes elements', () => {
    const tx = renderUpdate(deleted!.prev, deleted!.next);
    expect(tx.split('\n').filter(Boolean).every((l) => l.startsWith('delete element '))).toBe(true);
  });

  test('a label change moves the pod: its map entries are deleted before they are added again', () => {
    const lines = renderUpdate(relabelled!.prev, relabelled!.next).split('\n');
    const del = lines.findIndex((l) => /^delete element inet netpolicy ingress_v4 \{ 10\.244\.1\.30 \}/.test(l));
    const add = lines.findIndex((l) => /^add element inet netpolicy ingress_v4 \{ 10\.244\.1\.30 : jump grp_in_/.test(l));
    expect(del).toBeGreaterThanOrEqual(0);
    expect(add).toBeGreaterThan(del);
  });

  test('a changed policy replaces its chain whole and drops the sets nothing uses', () => {
    const tx = renderUpdate(policyChanged!.prev, policyChanged!.next);
    expect(tx).toMatch(/^flush chain inet netpolicy pol_in_shop_web$/m);
    const lines = tx.split('\n');
    const lastRule = lines.map((l, i) => (l.startsWith('add rule ') ? i : -1)).reduce((a, b) => Math.max(a, b));
    const firstSetDelete = lines.findIndex((l) => l.startsWith('delete set '));
    expect(firstSetDelete).toBeGreaterThan(lastRule);
  });

  test('a table name mismatch is refused', () => {
    expect(() => diffStates(nftState(added!.prev, { table: 'a' }), nftState(added!.next, { table: 'b' }))).toThrow(RangeError);
  });
});
