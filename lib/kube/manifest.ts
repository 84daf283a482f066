// Parsing one manifest file into API objects, as the API would serve them.
// Pure: the directory watcher (./manifest-dir.ts) does the I/O and logging.
//
// A file is YAML (any number of documents) or JSON. A document is one
// object, a `kind: List` (its items), or a typed list such as `ServiceList`
// as `kubectl get -o yaml` or a raw API LIST prints it (items without kind).
// Objects of kinds we do not serve are skipped; objects that cannot be what
// the API serves (wrong apiVersion, no metadata.name) are rejected. Both are
// reported as problems, naming the document index, and the rest of the file
// stands. A syntax error fails the whole file: ManifestSyntaxError.
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { NetError } from '../errors.ts';
import { KINDS, isKind } from './types.ts';
import type { Kind } from './types.ts';

export class ManifestSyntaxError extends NetError {
  constructor(message: string, cause?: unknown) {
    super('MANIFEST_SYNTAX', message, { cause });
  }
}

export interface ManifestObject {
  kind: Kind;
  obj: KubernetesObject;
  /** Where in the file: "0", "2", "1.items[3]" (document index, then list item). */
  index: string;
}

export interface ManifestProblem {
  index: string;
  /** `debug` for kinds we do not serve, `warn` for objects we reject. */
  level: 'debug' | 'warn';
  message: string;
}

export interface ParsedManifest {
  objects: ManifestObject[];
  problems: ManifestProblem[];
}

export const MANIFEST_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json'];

/** Whether the directory reads `name`: a manifest extension, and not hidden (editors' and atomic writers' temporaries are). */
export function isManifestName(name: string): boolean {
  if (name.startsWith('.')) return false;
  const lower = name.toLowerCase();
  return MANIFEST_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** Parses a file's text; `name` decides JSON (".json") or YAML. Throws ManifestSyntaxError. */
export function parseManifest(text: string, name: string): ParsedManifest {
  const out: ParsedManifest = { objects: [], problems: [] };
  const docs = name.toLowerCase().endsWith('.json') ? [parseJSON(text)] : parseYAML(text);
  docs.forEach((doc, i) => {
    if (doc !== null && doc !== undefined) document(doc, String(i), out);
  });
  return out;
}

function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ManifestSyntaxError((err as Error).message, err);
  }
}

function parseYAML(text: string): unknown[] {
  const docs = parseAllDocuments(text);
  // An empty stream (only comments or nothing) holds no documents.
  if (!Array.isArray(docs)) return [];
  return docs.map((d, i) => {
    const err = d.errors[0];
    if (err) throw new ManifestSyntaxError(docs.length > 1 ? `document ${i}: ${err.message}` : err.message, err);
    return d.toJS() as unknown;
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function document(doc: unknown, index: string, out: ParsedManifest): void {
  if (!isRecord(doc)) return problem(out, index, 'warn', 'not an object');
  const kind = doc['kind'];
  if (typeof kind !== 'string' || kind === '') return problem(out, index, 'warn', 'object has no kind');
  if (kind === 'List') return list(doc, index, undefined, out);
  const itemKind = kind.endsWith('List') ? kind.slice(0, -4) : undefined;
  if (itemKind !== undefined && isKind(itemKind)) return list(doc, index, itemKind, out);
  object(doc, index, out);
}

/** `kind: List` items carry their own kind; a typed `<Kind>List`'s items take the list's. */
function list(doc: Record<string, unknown>, index: string, itemKind: Kind | undefined, out: ParsedManifest): void {
  const items = doc['items'] ?? [];
  if (!Array.isArray(items)) return problem(out, index, 'warn', `${String(doc['kind'])}: items is not a list`);
  if (itemKind !== undefined && doc['apiVersion'] !== KINDS[itemKind].apiVersion) {
    return problem(out, index, 'warn', `${itemKind}List: apiVersion ${String(doc['apiVersion'])} is not ${KINDS[itemKind].apiVersion}`);
  }
  items.forEach((item: unknown, i) => {
    const at = `${index}.items[${i}]`;
    if (!isRecord(item)) return problem(out, at, 'warn', 'not an object');
    if (itemKind === undefined) {
      if (item['kind'] === 'List') return problem(out, at, 'warn', 'a List inside a List');
      return object(item, at, out);
    }
    object({ ...item, kind: itemKind, apiVersion: KINDS[itemKind].apiVersion }, at, out);
  });
}

function object(doc: Record<string, unknown>, index: string, out: ParsedManifest): void {
  const kind = doc['kind'];
  if (typeof kind !== 'string' || kind === '') return problem(out, index, 'warn', 'object has no kind');
  if (!isKind(kind)) return problem(out, index, 'debug', `ignoring kind ${kind}`);
  const info = KINDS[kind];
  if (doc['apiVersion'] !== info.apiVersion) {
    return problem(out, index, 'warn', `${kind}: apiVersion ${String(doc['apiVersion'])} is not ${info.apiVersion}`);
  }
  const meta = doc['metadata'];
  const name = isRecord(meta) ? meta['name'] : undefined;
  if (!isRecord(meta) || typeof name !== 'string' || name === '') {
    return problem(out, index, 'warn', `${kind} has no metadata.name`);
  }
  const ns = meta['namespace'];
  if (ns !== undefined && (typeof ns !== 'string' || ns === '')) {
    return problem(out, index, 'warn', `${kind} ${name}: metadata.namespace is not a name`);
  }
  // As the API stores it: a namespaced object without a namespace lands in
  // "default" (kubectl's default); a cluster-scoped one has none.
  const metadata: Record<string, unknown> = { ...meta };
  if (info.namespaced) metadata['namespace'] = ns ?? 'default';
  else delete metadata['namespace'];
  out.objects.push({ kind, obj: { ...doc, metadata } as KubernetesObject, index });
}

function problem(out: ParsedManifest, index: string, level: ManifestProblem['level'], message: string): void {
  out.problems.push({ index, level, message });
}
