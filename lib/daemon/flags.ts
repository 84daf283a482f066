// Command lines in Go's `flag` package syntax, with coreos flagutil's
// environment fallback: the parser flanneld speaks, because upstream
// flanneld does (single-dash long flags are part of its interface).
//
//   -name / --name              a bool flag set to true
//   -name=value / --name=value  any flag
//   -name value                 any non-bool flag (a bool never takes the next argument)
//   --                          ends the flags; so does the first non-flag argument
//   -h / -help                  usage (unless a flag of that name exists)
//   <PREFIX>_<NAME>             env value for a flag the command line did not set
//                               (NAME upper-cased, '-' → '_'; empty values ignored)
//
// Daemons with pflag syntax (`--flag`, short `-f` options, subcommands:
// kube-proxy, netpolicy, netstack) use `commander` instead; this module is
// only for Go `flag` syntax.
import { NetError } from '../errors.ts';

export class FlagError extends NetError {
  constructor(message: string) {
    super('INVALID_FLAG', message);
  }
}

/**
 * string and int as in Go; bool takes Go's ParseBool forms; `csv` is one
 * value split at commas (a StringSlice); `list` is repeatable, each
 * occurrence appends (the first one replaces the default).
 */
export type GoFlagKind = 'string' | 'bool' | 'int' | 'list' | 'csv';

export interface GoFlag<K extends string = string> {
  name: string;
  /** Where the value goes in the parsed record. */
  key: K;
  kind: GoFlagKind;
  def: string | boolean | number | string[];
  usage: string;
  /** For a `list` flag: its env value is a comma-separated list (empty parts skipped). */
  envCommaList?: boolean;
}

export interface GoFlagSetOptions {
  /** Program name in the usage text. */
  program: string;
  /** Env fallback prefix, e.g. FLANNELD. */
  envPrefix: string;
}

/** The command line, parsed, before the environment is applied. */
export interface GoCommandLine<K extends string> {
  kind: 'flags';
  values: Record<K, unknown>;
  /** Names of the flags set on the command line. */
  set: ReadonlySet<string>;
  /** Arguments after the flags. */
  args: string[];
}

export type GoParseResult<K extends string> = GoCommandLine<K> | { kind: 'help' };

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** Go's strconv.ParseInt(s, 0, 64) for the ranges flags use: sign, 0x/0o/0b/leading-0 octal, underscores. */
export function parseGoInt(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(s);
  if (!m) return undefined;
  const body = m[2]!.replace(/_/g, '');
  let v: number;
  if (/^0[xXoObB]/.test(body)) v = Number(body.toLowerCase());
  else if (body.length > 1 && body.startsWith('0')) v = parseInt(body.slice(1), 8);
  else v = Number(body);
  if (!Number.isSafeInteger(v)) return undefined;
  return m[1] === '-' ? -v : v;
}

export class GoFlagSet<K extends string> {
  readonly flags: readonly GoFlag<K>[];
  readonly #byName: ReadonlyMap<string, GoFlag<K>>;
  readonly #opts: GoFlagSetOptions;
  /** `list` flags that have replaced their default, per parsed record. */
  readonly #fresh = new WeakMap<object, Set<string>>();

  constructor(flags: readonly GoFlag<K>[], opts: GoFlagSetOptions) {
    this.flags = flags;
    this.#byName = new Map(flags.map((f) => [f.name, f]));
    this.#opts = opts;
  }

  /** FLANNELD_ETCD_ENDPOINTS for etcd-endpoints. */
  envKey(flag: string): string {
    return `${this.#opts.envPrefix}_${flag.toUpperCase().replace(/-/g, '_')}`;
  }

  /** Parses argv (without node and script) as Go's flag.Parse does; throws FlagError. */
  parseCommandLine(argv: readonly string[]): GoParseResult<K> {
    const values = this.#defaults();
    const set = new Set<string>();
    let i = 0;
    for (; i < argv.length; i++) {
      const a = argv[i]!;
      if (a === '--') {
        i++;
        break;
      }
      if (a.length < 2 || a[0] !== '-') break;
      let name = a.slice(a[1] === '-' ? 2 : 1);
      if (name === '' || name[0] === '-' || name[0] === '=') throw new FlagError(`bad flag syntax: ${a}`);
      let value: string | undefined;
      const eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.slice(eq + 1);
        name = name.slice(0, eq);
      }
      if ((name === 'h' || name === 'help') && !this.#byName.has(name)) return { kind: 'help' };
      const f = this.#byName.get(name);
      if (!f) throw new FlagError(`flag provided but not defined: -${name}`);
      if (value === undefined) {
        if (f.kind === 'bool') value = 'true';
        else {
          if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
          value = argv[++i]!;
        }
      }
      this.#set(values, f, value, `flag -${f.name}`);
      set.add(f.name);
    }
    return { kind: 'flags', values, set, args: argv.slice(i) };
  }

  /** Fills in `<PREFIX>_<NAME>` env values for the flags the command line did not set; throws FlagError. */
  applyEnv(cmd: GoCommandLine<K>, env: Readonly<Record<string, string | undefined>>): void {
    for (const f of this.flags) {
      if (cmd.set.has(f.name)) continue;
      const key = this.envKey(f.name);
      const v = env[key];
      if (v === undefined || v === '') continue;
      if (f.kind === 'list' && f.envCommaList) {
        for (const part of v.split(',')) if (part.trim() !== '') this.#set(cmd.values, f, part.trim(), key);
      } else this.#set(cmd.values, f, v, key);
    }
  }

  /** Usage text in the shape of Go's PrintDefaults (flags sorted by name). */
  usage(): string {
    const lines = [`Usage: ${this.#opts.program} [OPTION]...`];
    for (const f of [...this.flags].sort((a, b) => a.name.localeCompare(b.name))) {
      const type = f.kind === 'bool' ? '' : f.kind === 'int' ? ' int' : f.kind === 'list' ? ' value' : ' string';
      lines.push(`  -${f.name}${type}`);
      let def = '';
      if (f.kind === 'bool') def = f.def ? ' (default true)' : '';
      else if (f.kind === 'int') def = f.def !== 0 ? ` (default ${String(f.def)})` : '';
      else if (f.kind === 'csv') def = ` (default "${(f.def as string[]).join(',')}")`;
      else if (f.kind === 'string' && f.def !== '') def = ` (default "${String(f.def)}")`;
      lines.push(`    \t${f.usage}${def}`);
    }
    return lines.join('\n') + '\n';
  }

  #defaults(): Record<K, unknown> {
    const o = {} as Record<K, unknown>;
    for (const f of this.flags) o[f.key] = Array.isArray(f.def) ? [...f.def] : f.def;
    this.#fresh.set(o, new Set());
    return o;
  }

  #set(o: Record<K, unknown>, f: GoFlag<K>, raw: string, source: string): void {
    switch (f.kind) {
      case 'string':
        o[f.key] = raw;
        break;
      case 'bool': {
        const b = parseGoBool(raw);
        if (b === undefined) throw new FlagError(`invalid boolean value "${raw}" for ${source}: parse error`);
        o[f.key] = b;
        break;
      }
      case 'int': {
        const n = parseGoInt(raw);
        if (n === undefined) throw new FlagError(`invalid value "${raw}" for ${source}: parse error`);
        o[f.key] = n;
        break;
      }
      case 'csv':
        o[f.key] = raw.split(',');
        break;
      case 'list': {
        const fresh = this.#fresh.get(o)!;
        const cur = fresh.has(f.name) ? (o[f.key] as string[]) : [];
        fresh.add(f.name);
        o[f.key] = [...cur, raw];
        break;
      }
    }
  }
}
