// The flannel CNI meta plugin: reads flanneld's subnet.env, renders a
// delegate config (bridge + host-local by default), saves it per attachment
// and hands the real work to the delegate. Drop-in for flannel-io/cni-plugin
// (research cni.md §2.5, flannel.md §5.2), with these fixes:
//   - a missing subnet.env is error code 11 (try again later) with a message
//     that says flanneld has not written the file yet,
//   - saved delegate files are per attachment (<containerID>@<ifName>), upstream
//     <containerID> files are still honoured,
//   - a failed delegate ADD is cleaned up (delegate DEL, then the saved file
//     is removed) instead of leaking the file (containernetworking/plugins#426),
//   - a corrupt saved file does not fail DEL and is removed,
//   - CHECK asks the delegate (upstream: no-op) and reports a subnet change,
//   - STATUS and GC (CNI 1.1.0) are implemented.
import { readFileSync } from 'node:fs';
import { getPrevResult } from '../skel/args.ts';
import { delegateAdd, delegateCheck, delegateDel, delegateGc, delegateStatus } from '../skel/invoke.ts';
import { goJson } from '../skel/json.ts';
import { CniError, ErrCode } from '../skel/types.ts';
import type { CmdArgs, PluginFuncs, Result } from '../skel/types.ts';
import { convertResult } from '../skel/version.ts';
import { buildDelegate, delegateType, parseFlannelConf, renderDelegate } from './delegate.ts';
import type { FlannelConf } from './delegate.ts';
import { loadFlannelSubnetEnv } from './subnet-env.ts';
import type { FlannelSubnetEnv } from './subnet-env.ts';
import { listSaved, listTempFiles, loadDelegate, removeSaved, saveDelegate } from './state.ts';
import type { LoadedDelegate } from './state.ts';

type JsonObject = Record<string, unknown>;

export interface FlannelOptions {
  /** Where diagnostics go (the process's stderr by default). */
  stderr?: { write(s: string): unknown };
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function withPrefix(prefix: string, err: unknown, code?: number): CniError {
  if (err instanceof CniError) return new CniError(code ?? err.cniCode, prefix + err.message, err.details, { cause: err });
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(code ?? ErrCode.Internal, prefix + msg, undefined, { cause: err });
}

/** subnet.env, with upstream's wording around any failure (code 11 when the file is missing). */
function loadSubnetEnvForAdd(conf: FlannelConf, code?: number): FlannelSubnetEnv {
  try {
    return loadFlannelSubnetEnv(conf.subnetFile);
  } catch (err) {
    const e = withPrefix("failed to load flannel 'subnet.env' file: ", err, code);
    throw new CniError(e.cniCode, `${e.message}. Check the flannel pod log for this node.`, e.details, { cause: err });
  }
}

/** A saved delegate's JSON object, or undefined when it cannot be used (empty or corrupt file). */
function parseSaved(saved: LoadedDelegate): JsonObject | undefined {
  try {
    const v: unknown = JSON.parse(saved.bytes.toString('utf8'));
    if (isObject(v) && typeof v.type === 'string' && v.type !== '') return v;
  } catch {
    // fall through
  }
  return undefined;
}

function sortedJson(o: JsonObject): Buffer {
  const keys = Object.keys(o).sort();
  const out: JsonObject = {};
  for (const k of keys) out[k] = o[k];
  return Buffer.from(goJson(out));
}

interface Attachment {
  containerId: string;
  ifName: string;
}

function validAttachments(config: Readonly<JsonObject>): Attachment[] | undefined {
  const raw = config['cni.dev/valid-attachments'] ?? config['cni.dev/attachments'];
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw new CniError(ErrCode.DecodingFailure, 'cni.dev/valid-attachments: expected an array');
  return raw.map((a: unknown, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw new CniError(ErrCode.DecodingFailure, `cni.dev/valid-attachments[${i}]: expected {"containerID": string, "ifname": string}`);
    }
    return { containerId: a.containerID, ifName: a.ifname };
  });
}

export function createFlannelFuncs(opts: FlannelOptions = {}): PluginFuncs {
  const stderr = opts.stderr ?? process.stderr;
  const log = (s: string): void => void stderr.write(s.endsWith('\n') ? s : s + '\n');

  async function add(args: CmdArgs): Promise<Result> {
    const conf = parseFlannelConf(args.config);
    const env = loadSubnetEnvForAdd(conf);
    const delegate = buildDelegate(conf, env);
    const type = delegateType(delegate);
    const bytes = renderDelegate(delegate);
    log(`delegateAdd: netconf sent to delegate plugin:\n${bytes.toString('utf8')}`);

    // Saved before the delegate runs: whatever it creates, DEL can find the config to undo it.
    const path = saveDelegate(conf.dataDir, args.containerId, args.ifName, bytes);
    try {
      return await delegateAdd(type, bytes, args);
    } catch (err) {
      // Undo what the delegate may have left; keep the file if that fails, so the runtime's DEL retries.
      try {
        await delegateDel(type, bytes, args);
        removeSaved(path);
      } catch (delErr) {
        log(`flannel: cleanup after failed ADD did not complete, keeping ${path} for DEL: ${(delErr as Error).message}`);
      }
      throw withPrefix('failed to delegate add: ', err);
    }
  }

  async function del(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    const saved = loadDelegate(conf.dataDir, args.containerId, args.ifName);
    if (saved === undefined) return; // already removed, or ADD never got as far: nothing to undo
    const delegate = parseSaved(saved);
    if (delegate === undefined) {
      // An unusable file can never drive a DEL; the interface goes with the netns.
      log(`flannel: ignoring unusable saved delegate config ${saved.path} (${saved.bytes.length} bytes)`);
      removeSaved(saved.path);
      return;
    }
    await delegateDel(delegateType(delegate), saved.bytes, args);
    removeSaved(saved.path);
  }

  async function check(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    const saved = loadDelegate(conf.dataDir, args.containerId, args.ifName);
    if (saved === undefined) {
      throw new CniError(
        ErrCode.Internal,
        `flannel: no saved delegate config for container ${args.containerId} interface ${args.ifName} in ${conf.dataDir}`,
      );
    }
    const delegate = parseSaved(saved);
    if (delegate === undefined) throw new CniError(ErrCode.Internal, `flannel: saved delegate config ${saved.path} is unusable`);

    // The node's lease changed since ADD: the pod's address is outside the node's subnet now.
    let env: FlannelSubnetEnv | undefined;
    try {
      env = loadFlannelSubnetEnv(conf.subnetFile);
    } catch {
      env = undefined; // flanneld down: not this attachment's fault
    }
    if (env !== undefined) {
      const now = [env.subnet, env.ipv6Subnet].filter((s) => s !== undefined).map((s) => s.toString());
      const ipam = isObject(delegate.ipam) ? delegate.ipam : {};
      const then = Array.isArray(ipam.ranges)
        ? ipam.ranges.flatMap((set: unknown) => (Array.isArray(set) ? set : [])).map((r: unknown) => (isObject(r) ? r.subnet : undefined))
        : [];
      if (JSON.stringify(now) !== JSON.stringify(then)) {
        throw new CniError(
          ErrCode.Internal,
          `flannel: node subnet changed since ADD: attachment uses [${then.join(' ')}], ${conf.subnetFile} has [${now.join(' ')}]`,
        );
      }
    }

    const version = typeof delegate.cniVersion === 'string' && delegate.cniVersion !== '' ? delegate.cniVersion : args.cniVersion;
    const prev = getPrevResult(args);
    const checkConf: JsonObject = { ...delegate, cniVersion: version };
    if (prev !== undefined) checkConf.prevResult = convertResult(prev, version);
    await delegateCheck(delegateType(delegate), sortedJson(checkConf), args);
  }

  async function status(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    const env = loadSubnetEnvForAdd(conf, ErrCode.PluginNotAvailable);
    const delegate = buildDelegate(conf, env);
    await delegateStatus(delegateType(delegate), renderDelegate(delegate), args);
  }

  async function gc(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    const valid = validAttachments(args.config);
    const errors: CniError[] = [];

    // Delegates to forward GC to: today's (from subnet.env) and every distinct saved one.
    const candidates: JsonObject[] = [];
    try {
      candidates.push(buildDelegate(conf, loadFlannelSubnetEnv(conf.subnetFile)));
    } catch {
      // no current delegate; the saved ones still name the IPAM state to collect
    }
    const saved = listSaved(conf.dataDir);
    for (const s of saved) {
      try {
        const d = parseSaved(loadDelegateFile(s.file));
        if (d !== undefined) candidates.push(d);
      } catch {
        // vanished meanwhile
      }
    }
    const seen = new Set<string>();
    for (const d of candidates) {
      const ipam = isObject(d.ipam) ? d.ipam : {};
      const key = JSON.stringify([d.type, d.name, ipam.type, ipam.dataDir]);
      if (seen.has(key)) continue;
      seen.add(key);
      const gcConf: JsonObject = { ...d, cniVersion: args.cniVersion };
      for (const k of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
        if (args.config[k] !== undefined) gcConf[k] = args.config[k];
      }
      try {
        await delegateGc(delegateType(d), sortedJson(gcConf), args);
      } catch (err) {
        errors.push(withPrefix(`failed to delegate GC to ${String(d.type)}: `, err));
      }
    }

    if (valid !== undefined) {
      const ours = new Set(valid.map((a) => `${a.containerId}\0${a.ifName}`));
      const ids = new Set(valid.map((a) => a.containerId));
      for (const s of saved) {
        const keep = s.ifName === undefined ? ids.has(s.containerId) : ours.has(`${s.containerId}\0${s.ifName}`);
        if (!keep) removeSaved(s.file);
      }
    }
    for (const t of listTempFiles(conf.dataDir)) removeSaved(t);

    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) {
      throw new CniError(errors[0]!.cniCode, errors.map((e) => e.message).join('; '));
    }
  }

  return { add, del, check, status, gc };
}

function loadDelegateFile(file: string): LoadedDelegate {
  return { path: file, bytes: readFileSync(file), legacy: false };
}

export const flannelFuncs: PluginFuncs = createFlannelFuncs();
