import { describe, expect, it } from 'vitest';
import { ManifestSyntaxError, isManifestName, parseManifest } from './manifest.ts';

const names = (text: string, file = 'a.yaml'): string[] => parseManifest(text, file).objects.map((o) => `${o.kind} ${o.obj.metadata?.namespace ?? '-'}/${o.obj.metadata?.name}`);

describe('parseManifest', () => {
  it('reads every document of a multi-document YAML file, skipping empty ones', () => {
    const text = `---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
---
# only a comment
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
`;
    expect(names(text)).toEqual(['Service shop/web', 'Pod shop/web-1', 'NetworkPolicy default/deny']);
    expect(parseManifest(text, 'a.yaml').objects.map((o) => o.index)).toEqual(['0', '2', '3']);
  });

  it('puts namespaced objects without a namespace in "default" and drops it from cluster-scoped ones', () => {
    const text = `apiVersion: v1
kind: Node
metadata: {name: n1, namespace: ignored}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc}
addressType: IPv4
endpoints: []
`;
    expect(names(text)).toEqual(['Node -/n1', 'Namespace -/shop', 'EndpointSlice default/web-abc']);
  });

  it('expands kind: List, and typed lists whose items carry no kind', () => {
    const list = `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: a}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}
- {apiVersion: v1, kind: Pod, metadata: {name: p}}
`;
    const parsed = parseManifest(list, 'l.yml');
    expect(parsed.objects.map((o) => `${o.kind} ${o.obj.metadata?.name} ${o.index}`)).toEqual(['Service a 0.items[0]', 'Pod p 0.items[2]']);
    expect(parsed.problems).toEqual([{ index: '0.items[1]', level: 'debug', message: 'ignoring kind Deployment' }]);

    const typed = JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '7' }, items: [{ metadata: { name: 'p1', namespace: 'x' } }] });
    const t = parseManifest(typed, 'pods.json');
    expect(t.objects).toHaveLength(1);
    expect(t.objects[0]!.obj).toMatchObject({ kind: 'Pod', apiVersion: 'v1', metadata: { name: 'p1', namespace: 'x' } });
  });

  it('reads a JSON file holding one object', () => {
    const text = JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'np', namespace: 'a' }, spec: { podSelector: {} } });
    expect(names(text, 'np.json')).toEqual(['NetworkPolicy a/np']);
  });

  it('ignores unknown kinds at debug level and rejects objects the API would not serve, naming the index', () => {
    const text = `apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: Service
metadata: {labels: {a: b}}
---
apiVersion: apps/v1
kind: Service
metadata: {name: wrong-group}
---
kind: Pod
metadata: {name: no-version}
---
- just
- a list
---
metadata: {name: no-kind}
---
apiVersion: v1
kind: Pod
metadata: {name: ok}
`;
    const parsed = parseManifest(text, 'm.yaml');
    expect(parsed.objects.map((o) => o.obj.metadata?.name)).toEqual(['ok']);
    expect(parsed.problems).toEqual([
      { index: '0', level: 'debug', message: 'ignoring kind ConfigMap' },
      { index: '1', level: 'warn', message: 'Service has no metadata.name' },
      { index: '2', level: 'warn', message: 'Service: apiVersion apps/v1 is not v1' },
      { index: '3', level: 'warn', message: 'Pod: apiVersion undefined is not v1' },
      { index: '4', level: 'warn', message: 'not an object' },
      { index: '5', level: 'warn', message: 'object has no kind' },
    ]);
  });

  it('fails a file with a syntax error with the parser message', () => {
    expect(() => parseManifest('apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n', 'bad.yaml')).toThrow(ManifestSyntaxError);
    expect(() => parseManifest('{"kind": ', 'bad.json')).toThrow(/JSON/);
    const err = (() => {
      try {
        parseManifest('a: 1\n---\nb: [\n', 'two.yaml');
      } catch (e) {
        return e as ManifestSyntaxError;
      }
      return undefined;
    })();
    expect(err?.code).toBe('MANIFEST_SYNTAX');
    expect(err?.message).toMatch(/^document 1: .*line/);
  });

  it('holds nothing for an empty file', () => {
    expect(parseManifest('', 'e.yaml')).toEqual({ objects: [], problems: [] });
    expect(parseManifest('# nothing\n', 'e.yml')).toEqual({ objects: [], problems: [] });
  });
});

describe('isManifestName', () => {
  it('accepts .yaml/.yml/.json and skips hidden files', () => {
    expect(['a.yaml', 'b.YML', 'c.json'].map(isManifestName)).toEqual([true, true, true]);
    expect(['.a.yaml', '.tmp', 'a.yaml.swp', 'README.md', 'a.yaml~'].map(isManifestName)).toEqual([false, false, false, false, false]);
  });
});
