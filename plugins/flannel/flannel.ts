// The flannel CNI meta plugin: reads flanneld's subnet.env, renders a
// delegate config (bridge + host-local by default), saves it per attachment
// and hands the real work to the delegate. Drop-in for flannel-io/cni-plugin
// (research cni.md §2.5, flannel.md §5.2), with these fixes:
//   - a missing subnet.env is error code 11 (try again later) with a message
//     that says flanneld has not written the file yet,
//   - saved delegate files are per attachment: eth0's at <containerID>, where
//     upstream reads and writes it (compatible both ways), other interfaces'
//     at <containerID>@<ifName> (see state.ts),
//   - a failed delegate ADD is cleaned up (delegate DEL, then the saved file
//     is removed) instead of leaking the file (containernetworking/plugins#426),
//   - a corrupt saved file does not fail DEL and is removed,
//   - CHECK asks the delegate (upstream: no-op) and reports a subnet change,
//   - STATUS and GC (CNI 1.1.0) are implemented.
import { readFileSync } from 'node:fs';
import { getPrevResult } from '../skel/args.ts';
import { delegateAdd, delegateCheck, delegateDel, delegateGc, delegateStatus } from '../skel/invoke.ts';
import { goJson } from '../skel/json.ts';
import { ErrorCode, NetError, codeOf, errorMessage, wrapError } from '../../lib/errors.ts';
import type { CmdArgs, PluginFuncs, Result } from '../skel/types.ts';
import { convertResult } from '../skel/version.ts';
import { VALID_ATTACHMENTS_KEYS, attachmentKey, validAttachments } from '../skel/attachments.ts';
import { buildDelegate, delegateType, parseFlannelConf, renderDelegate } from './delegate.ts';
import type { FlannelConf } from './delegate.ts';
import { SubnetEnvNotFoundError, loadFlannelSubnetEnv } from './subnet-env.ts';
import type { FlannelSubnetEnv } from './subnet-env.ts';
import { listSaved, listTempFiles, loadDelegates, removeSaved, saveDelegate } from './state.ts';
import type { LoadedDelegate } from './state.ts';

type JsonObject = Record<string, unknown>;

export interface FlannelOptions {
  /** Where diagnostics go (the process's stderr by default). */
  stderr?: { write(s: string): unknown };
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * subnet.env, with upstream's wording around any failure. A missing file
 * means flanneld has not written it yet: transient for ADD (try again later),
 * and for STATUS (`unavailable`) any failure means this node cannot serve ADD.
 */
function loadSubnetEnvForAdd(conf: FlannelConf, unavailable = false): FlannelSubnetEnv {
  try {
    return loadFlannelSubnetEnv(conf.subnetFile);
  } catch (err) {
    const code = unavailable
      ? ErrorCode.Unavailable
      : err instanceof SubnetEnvNotFoundError
        ? ErrorCode.TryAgain
        : (codeOf(err) ?? 'INTERNAL');
    const msg = `failed to load flannel 'subnet.env' file: ${errorMessage(err)}. Check the flannel pod log for this node.`;
    throw new NetError(code, msg, { cause: err, details: err instanceof NetError ? err.details : undefined });
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
    const path = await saveDelegate(conf.dataDir, args.containerId, args.ifName, bytes);
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
      throw wrapError('failed to delegate add: ', err);
    }
  }

  async function del(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    // None: already removed, or ADD never got as far: nothing to undo. Two (eth0
    // saved by this version and by the previous one): each drives its own DEL,
    // unless they are the same bytes; each file goes only after its DEL succeeded.
    let done: Buffer | undefined;
    for (const saved of loadDelegates(conf.dataDir, args.containerId, args.ifName)) {
      const delegate = parseSaved(saved);
      if (delegate === undefined) {
        // An unusable file can never drive a DEL; the interface goes with the netns.
        log(`flannel: ignoring unusable saved delegate config ${saved.path} (${saved.bytes.length} bytes)`);
      } else if (done === undefined || !done.equals(saved.bytes)) {
        await delegateDel(delegateType(delegate), saved.bytes, args);
        done = saved.bytes;
      }
      removeSaved(saved.path);
    }
  }

  async function check(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    const saved = loadDelegates(conf.dataDir, args.containerId, args.ifName)[0];
    if (saved === undefined) {
      throw new NetError(
        'DELEGATE_CONFIG_NOT_FOUND',
        `flannel: no saved delegate config for container ${args.containerId} interface ${args.ifName} in ${conf.dataDir}`,
      );
    }
    const delegate = parseSaved(saved);
    if (delegate === undefined) throw new NetError('DELEGATE_CONFIG_INVALID', `flannel: saved delegate config ${saved.path} is unusable`);

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
        throw new NetError(
          'SUBNET_CHANGED',
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
    const env = loadSubnetEnvForAdd(conf, true);
    const delegate = buildDelegate(conf, env);
    await delegateStatus(delegateType(delegate), renderDelegate(delegate), args);
  }

  async function gc(args: CmdArgs): Promise<void> {
    const conf = parseFlannelConf(args.config);
    const valid = validAttachments(args.config);
    const errors: NetError[] = [];

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
      for (const k of VALID_ATTACHMENTS_KEYS) {
        if (args.config[k] !== undefined) gcConf[k] = args.config[k];
      }
      try {
        await delegateGc(delegateType(d), sortedJson(gcConf), args);
      } catch (err) {
        errors.push(wrapError(`failed to delegate GC to ${String(d.type)}: `, err));
      }
    }

    if (valid !== undefined) {
      const ours = new Set(valid.map(attachmentKey));
      const ids = new Set(valid.map((a) => a.containerId));
      for (const s of saved) {
        const keep = s.ifName === undefined ? ids.has(s.containerId) : ours.has(attachmentKey({ containerId: s.containerId, ifName: s.ifName }));
        if (!keep) removeSaved(s.file);
      }
    }
    for (const t of listTempFiles(conf.dataDir)) removeSaved(t);

    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) {
      // The first failure's kind (and CNI number) stands for all of them.
      throw errors[0]!.withMessage(errors.map((e) => e.message).join('; '), { keepDetails: false });
    }
  }

  return { add, del, check, status, gc };
}

function loadDelegateFile(file: string): LoadedDelegate {
  return { path: file, bytes: readFileSync(file) };
}

export const flannelFuncs: PluginFuncs = createFlannelFuncs();
