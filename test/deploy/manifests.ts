// Loading the Kubernetes manifests of deploy/ and the upstream fixtures, and
// the checks the API server applies to `kubectl apply` over existing
// objects: shared by the manifest tests.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const DEPLOY = join(ROOT, 'deploy');
export const UPSTREAM = join(ROOT, 'test/fixtures/upstream');

// Manifests are free-form YAML: the tests walk them as plain objects.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

/** Every document of a YAML file, as objects; YAML errors and empty documents fail loudly. */
export function loadYaml(path: string): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const v = doc.toJS() as Obj | null;
    if (v === null) continue;
    out.push(v);
  }
  return out;
}

/** deploy/*.yml, by file name. */
export function deployManifests(): Map<string, Obj[]> {
  const files = readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f)).sort();
  return new Map(files.map((f) => [f, loadYaml(join(DEPLOY, f))]));
}

/** The identity of an object: what `kubectl apply` matches a live object by. */
export const idOf = (o: Obj): string => `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

export function find(docs: readonly Obj[], kind: string, name: string): Obj {
  const d = docs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (d === undefined) throw new Error(`no ${kind}/${name}`);
  return d;
}

/**
 * Fields the API server refuses to change on update (apps/v1 and rbac/v1
 * validation): what would make `kubectl apply` of `ours` over `live` fail.
 * Returns one line per refused change.
 */
export function immutableChanges(live: Obj, ours: Obj): string[] {
  const out: string[] = [];
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
  if (idOf(live) !== idOf(ours)) out.push(`identity ${idOf(live)} → ${idOf(ours)}`);
  if (['DaemonSet', 'Deployment', 'StatefulSet', 'ReplicaSet'].includes(live.kind) && !same(live.spec?.selector, ours.spec?.selector)) {
    out.push(`${idOf(live)}: spec.selector is immutable (${JSON.stringify(live.spec?.selector)} → ${JSON.stringify(ours.spec?.selector)})`);
  }
  if (['ClusterRoleBinding', 'RoleBinding'].includes(live.kind) && !same(live.roleRef, ours.roleRef)) {
    out.push(`${idOf(live)}: roleRef is immutable`);
  }
  if (live.kind === 'ConfigMap' && live.immutable === true && !same(live.data, ours.data)) out.push(`${idOf(live)}: immutable ConfigMap`);
  return out;
}

/** Objects with sorted keys, so that equality does not depend on the YAML's key order. */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Obj)[k])]));
  return v;
}

/** Validates one object against the Kubernetes OpenAPI schema (kubernetes-models' generated validators). */
export async function validateObject(o: Obj): Promise<void> {
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') throw new Error(`${JSON.stringify(o.metadata)}: no apiVersion/kind`);
  const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<string, new (data: Obj) => { validate(): void }>;
  const Model = mod[o.kind];
  if (Model === undefined) throw new Error(`kubernetes-models has no ${o.apiVersion} ${o.kind}`);
  new Model(o).validate();
}

/** The containers and init containers of a workload's pod template. */
export function containersOf(o: Obj): Obj[] {
  const spec = o.spec?.template?.spec as Obj | undefined;
  return [...((spec?.initContainers as Obj[] | undefined) ?? []), ...((spec?.containers as Obj[] | undefined) ?? [])];
}

/** `--name=value`, `--name value` and `--name` of a command line: the names. */
export function flagNames(argv: readonly string[]): string[] {
  return argv.filter((a) => /^--?[a-zA-Z]/.test(a)).map((a) => a.replace(/^--?/, '').replace(/=.*$/s, ''));
}

/** Option names an executable's --help output lists (Go flag style `-name` and commander style `--name`, `-v, --v`). */
export function helpFlagNames(help: string): Set<string> {
  const names = new Set<string>();
  for (const line of help.split('\n')) {
    const m = /^\s+((?:--?[a-zA-Z][\w-]*(?:,\s*)?)+)/.exec(line);
    if (m === null) continue;
    for (const f of m[1]!.split(/,\s*/)) names.add(f.replace(/^--?/, ''));
  }
  return names;
}

/** One field of a generated model: its YAML name and its type ("V1Container", "Array<string>", "{ [key: string]: string; }"). */
interface Attribute {
  readonly baseName: string;
  readonly type: string;
}
type ModelClass = { getAttributeTypeMap(): readonly Attribute[] };

/**
 * Fields the Kubernetes API does not know, which the OpenAPI validators let
 * through (the schemas allow additional properties) but kubectl's strict field
 * validation rejects: walks an object along client-node's models, which are
 * generated from the same OpenAPI spec. Returns the paths of unknown fields.
 */
export async function unknownFields(o: Obj): Promise<string[]> {
  const models = (await import('@kubernetes/client-node/dist/gen/models/all.js')) as unknown as Record<string, ModelClass | undefined>;
  const version = String(o.apiVersion).split('/').at(-1)!;
  const root = `${version[0]!.toUpperCase()}${version.slice(1)}${o.kind}`;
  if (models[root]?.getAttributeTypeMap === undefined) throw new Error(`no client-node model ${root} for ${o.apiVersion} ${o.kind}`);
  const out: string[] = [];
  const walk = (v: unknown, type: string, path: string): void => {
    if (v === null || v === undefined) return;
    const array = /^Array<(.+)>$/.exec(type);
    if (array !== null) {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, array[1]!, `${path}[${i}]`));
      return;
    }
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
    if (map !== null) {
      if (typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, map[1]!, `${path}[${k}]`);
      return;
    }
    const model = models[type];
    if (model?.getAttributeTypeMap === undefined || typeof v !== 'object' || Array.isArray(v)) return;
    const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, x] of Object.entries(v)) {
      const t = attrs.get(k);
      if (t === undefined) out.push(`${path}.${k}`);
      else walk(x, t, `${path}.${k}`);
    }
  };
  walk(o, root, idOf(o));
  return out;
}
