import { describe, expect, it } from 'vitest';
import { ErrnoError, NetError } from '../../lib/errors.ts';
import { DumpInterruptedError } from '../../lib/netlink/conn.ts';
import { runPlugin } from './index.ts';
import { captureIO } from './invoke.ts';
import { CniError } from './types.ts';
import type { CmdArgs, PluginFuncs, Result } from './types.ts';

const RESULT: Result = {
  interfaces: [
    { name: 'cni0', mac: '2e:52:6f:f1:26:ec' },
    { name: 'eth0', mac: '4e:b4:b3:a5:a1:bf', sandbox: '/run/netns/p1' },
  ],
  ips: [{ interface: 1, address: '10.99.0.2/24', gateway: '10.99.0.1' }],
  routes: [{ dst: '0.0.0.0/0' }],
};

interface Recorder extends PluginFuncs {
  calls: { command: string; args: CmdArgs }[];
}

function recorder(overrides: Partial<PluginFuncs> = {}): Recorder {
  const calls: { command: string; args: CmdArgs }[] = [];
  return {
    calls,
    add: async (args) => {
      calls.push({ command: 'ADD', args });
      return RESULT;
    },
    del: async (args) => void calls.push({ command: 'DEL', args }),
    check: async (args) => void calls.push({ command: 'CHECK', args }),
    ...overrides,
  };
}

const BASE_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'ctr1',
  CNI_NETNS: '/var/run/netns/skel-test-does-not-exist',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};
const CONF = '{"cniVersion":"1.0.0","name":"net1","type":"bridge"}';

async function run(
  env: Record<string, string | undefined>,
  stdin: string = CONF,
  funcs: PluginFuncs = recorder(),
  about = 'CNI test plugin v0',
) {
  const io = captureIO(env, stdin);
  const code = await runPlugin(funcs, about, io);
  return { code, out: io.out(), err: io.err() };
}

const errorJson = (cniVersion: string, code: number, msg: string, details?: string): string =>
  JSON.stringify({ cniVersion, code, msg, ...(details !== undefined ? { details } : {}) }, null, 4);

describe('runPlugin: error matrix', () => {
  const supported = '["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]';
  const cases: {
    name: string;
    env?: Record<string, string | undefined>;
    stdin?: string;
    expected: string;
  }[] = [
    { name: 'empty stdin', stdin: '', expected: errorJson('1.1.0', 6, 'error unmarshall network config: unexpected end of JSON input') },
    { name: 'truncated JSON', stdin: '{"cniVersion":', expected: errorJson('1.1.0', 6, 'error unmarshall network config: unexpected end of JSON input') },
    { name: 'JSON array', stdin: '[]', expected: errorJson('1.1.0', 6, 'error unmarshall network config: cannot unmarshal array into a network config object') },
    {
      name: 'unsupported cniVersion',
      stdin: '{"cniVersion":"9.9.9","name":"n"}',
      expected: errorJson('1.1.0', 1, 'incompatible CNI versions', `config is "9.9.9", plugin supports ${supported}`),
    },
    {
      name: 'cniVersion not a string',
      stdin: '{"cniVersion":1,"name":"n"}',
      expected: errorJson('1.1.0', 6, 'decoding version from network config: cniVersion must be a string'),
    },
    { name: 'missing name', stdin: '{"cniVersion":"1.0.0"}', expected: errorJson('1.1.0', 7, 'missing network name') },
    { name: 'empty name', stdin: '{"cniVersion":"1.0.0","name":""}', expected: errorJson('1.1.0', 7, 'missing network name') },
    {
      name: 'bad name',
      stdin: '{"cniVersion":"1.0.0","name":"bad name"}',
      expected: errorJson('1.1.0', 7, 'invalid characters found in network name', 'bad name'),
    },
    { name: 'empty netns', env: { CNI_NETNS: '' }, expected: errorJson('1.1.0', 4, 'required env variables [CNI_NETNS] missing') },
    { name: 'empty containerID', env: { CNI_CONTAINERID: '' }, expected: errorJson('1.1.0', 4, 'required env variables [CNI_CONTAINERID] missing') },
    { name: 'unset ifname', env: { CNI_IFNAME: undefined }, expected: errorJson('1.1.0', 4, 'required env variables [CNI_IFNAME] missing') },
    { name: 'no path', env: { CNI_PATH: undefined }, expected: errorJson('1.1.0', 4, 'required env variables [CNI_PATH] missing') },
    {
      name: 'several missing, in libcni order',
      env: { CNI_PATH: '', CNI_NETNS: '', CNI_CONTAINERID: '' },
      expected: errorJson('1.1.0', 4, 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing'),
    },
    {
      name: 'ifname too long',
      env: { CNI_IFNAME: 'abcdefghijklmnopqrstuvw' },
      expected: errorJson('1.1.0', 4, 'interface name is too long', 'interface name should be less than 16 characters'),
    },
    { name: 'ifname .', env: { CNI_IFNAME: '.' }, expected: errorJson('1.1.0', 4, 'interface name is . or ..') },
    { name: 'ifname ..', env: { CNI_IFNAME: '..' }, expected: errorJson('1.1.0', 4, 'interface name is . or ..') },
    ...['a/b', 'a:b', 'a b', 'a\tb'].map((n) => ({
      name: `ifname ${JSON.stringify(n)}`,
      env: { CNI_IFNAME: n },
      expected: errorJson('1.1.0', 4, 'interface name contains / or : or whitespace characters'),
    })),
    {
      name: 'containerID with a slash',
      env: { CNI_CONTAINERID: 'bad/id' },
      expected: errorJson('1.1.0', 4, 'invalid characters in containerID', 'bad/id'),
    },
    {
      name: 'containerID starting with a dot',
      env: { CNI_CONTAINERID: '.x' },
      expected: errorJson('1.1.0', 4, 'invalid characters in containerID', '.x'),
    },
    { name: 'unknown command', env: { CNI_COMMAND: 'FOO' }, expected: errorJson('1.1.0', 4, 'unknown CNI_COMMAND: FOO') },
    {
      name: 'CHECK on 0.3.1',
      env: { CNI_COMMAND: 'CHECK' },
      stdin: '{"cniVersion":"0.3.1","name":"n"}',
      expected: errorJson('1.1.0', 1, 'config version does not allow CHECK'),
    },
    {
      name: 'GC on 1.0.0',
      env: { CNI_COMMAND: 'GC' },
      stdin: CONF,
      expected: errorJson('1.1.0', 1, 'config version does not allow GC'),
    },
    {
      name: 'STATUS on 0.4.0',
      env: { CNI_COMMAND: 'STATUS' },
      stdin: '{"cniVersion":"0.4.0","name":"n"}',
      expected: errorJson('1.1.0', 1, 'config version does not allow STATUS'),
    },
    {
      name: 'CHECK on a newer-than-supported version',
      env: { CNI_COMMAND: 'CHECK' },
      stdin: '{"cniVersion":"2.0.0","name":"n"}',
      expected: errorJson('1.1.0', 1, 'incompatible CNI versions', `config is "2.0.0", plugin supports ${supported}`),
    },
    {
      name: 'CHECK with a malformed version',
      env: { CNI_COMMAND: 'CHECK' },
      stdin: '{"cniVersion":"x.1","name":"n"}',
      expected: errorJson('1.1.0', 6, 'failed to convert major version part "x": invalid syntax'),
    },
    {
      name: 'ADD into the plugin\'s own netns',
      env: { CNI_NETNS: '/proc/self/ns/net' },
      expected: errorJson('1.0.0', 8, "plugin's netns and netns from CNI_NETNS should not be the same"),
    },
    {
      name: 'DEL into the plugin\'s own netns',
      env: { CNI_COMMAND: 'DEL', CNI_NETNS: '/proc/self/ns/net' },
      expected: errorJson('1.0.0', 8, "plugin's netns and netns from CNI_NETNS should not be the same"),
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const funcs = recorder();
      const r = await run({ ...BASE_ENV, ...c.env }, c.stdin ?? CONF, funcs);
      expect(r.out).toBe(c.expected);
      expect(r.code).toBe(1);
      expect(funcs.calls).toEqual([]);
    });
  }
});

describe('runPlugin: plugin errors', () => {
  const cases: { name: string; thrown: unknown; expected: string }[] = [
    { name: 'plain Error → 999', thrown: new Error('boom'), expected: errorJson('1.0.0', 999, 'boom') },
    { name: 'non-Error value → 999', thrown: 'text', expected: errorJson('1.0.0', 999, 'text') },
    {
      name: 'CniError keeps code and details',
      thrown: new CniError(11, 'try later', 'lock held'),
      expected: errorJson('1.0.0', 11, 'try later', 'lock held'),
    },
    {
      name: 'netns not found → 8',
      thrown: new NetError('NETNS_NOT_FOUND', 'failed to open netns "/x": no such file or directory'),
      expected: errorJson('1.0.0', 8, 'failed to open netns "/x": no such file or directory'),
    },
    {
      name: 'not a netns → 8',
      thrown: new NetError('NOT_A_NETNS', 'failed to open netns "/tmp": unknown FS magic'),
      expected: errorJson('1.0.0', 8, 'failed to open netns "/tmp": unknown FS magic'),
    },
    { name: 'other NetError → 999', thrown: new NetError('EEXIST', 'link: file exists'), expected: errorJson('1.0.0', 999, 'link: file exists') },
    {
      name: 'interrupted netlink dump (EDUMPINTR) → 11',
      thrown: new DumpInterruptedError('addr dump'),
      expected: errorJson('1.0.0', 11, 'addr dump: dump interrupted by a concurrent change (NLM_F_DUMP_INTR)'),
    },
    { name: 'EINTR → 11', thrown: new ErrnoError('recvmsg', 4), expected: errorJson('1.0.0', 11, 'recvmsg: interrupted system call') },
    {
      name: 'a lib error with details keeps them',
      thrown: new NetError('INVALID_CONFIG', 'bad', { details: 'why' }),
      expected: errorJson('1.0.0', 7, 'bad', 'why'),
    },
    {
      name: 'HTML characters escaped like Go',
      thrown: new Error('GW:<nil> & more'),
      expected: errorJson('1.0.0', 999, 'GW:<nil> & more').replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026'),
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = await run(BASE_ENV, CONF, recorder({ add: () => Promise.reject(c.thrown) }));
      expect(r.out).toBe(c.expected);
      expect(r.code).toBe(1);
    });
  }

  it('a result that cannot be expressed in 0.2.0 is an error, not a result', async () => {
    const r = await run(BASE_ENV, '{"cniVersion":"0.2.0","name":"n"}', recorder({ add: async () => ({ interfaces: [{ name: 'lo' }] }) }));
    expect(r.out).toBe(errorJson('0.2.0', 999, 'cannot convert: no valid IP addresses'));
    expect(r.code).toBe(1);
  });
});

describe('runPlugin: success paths', () => {
  it('ADD prints the result in the config version, 4-space indented, no trailing newline', async () => {
    const funcs = recorder();
    const r = await run(BASE_ENV, CONF, funcs);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      [
        '{',
        '    "cniVersion": "1.0.0",',
        '    "interfaces": [',
        '        {',
        '            "name": "cni0",',
        '            "mac": "2e:52:6f:f1:26:ec"',
        '        },',
        '        {',
        '            "name": "eth0",',
        '            "mac": "4e:b4:b3:a5:a1:bf",',
        '            "sandbox": "/run/netns/p1"',
        '        }',
        '    ],',
        '    "ips": [',
        '        {',
        '            "interface": 1,',
        '            "address": "10.99.0.2/24",',
        '            "gateway": "10.99.0.1"',
        '        }',
        '    ],',
        '    "routes": [',
        '        {',
        '            "dst": "0.0.0.0/0"',
        '        }',
        '    ]',
        '}',
      ].join('\n'),
    );
    expect(r.err).toBe('');
  });

  it('ADD passes validated arguments to the plugin', async () => {
    const funcs = recorder();
    const env = { ...BASE_ENV, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p', CNI_PATH: '/a::/b' };
    await run(env, CONF, funcs);
    expect(funcs.calls).toHaveLength(1);
    const a = funcs.calls[0]!.args;
    expect(a).toMatchObject({
      command: 'ADD',
      containerId: 'ctr1',
      netns: BASE_ENV.CNI_NETNS,
      ifName: 'eth0',
      args: 'IgnoreUnknown=1;K8S_POD_NAME=p',
      path: ['/a', '/b'],
      config: { cniVersion: '1.0.0', name: 'net1', type: 'bridge' },
      cniVersion: '1.0.0',
    });
    expect(a.stdinData.toString()).toBe(CONF);
    expect(a.env).toBe(env);
  });

  it('ADD with no cniVersion answers in 0.1.0', async () => {
    const r = await run(BASE_ENV, '{"name":"n"}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      cniVersion: '0.1.0',
      ip4: { ip: '10.99.0.2/24', gateway: '10.99.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      dns: {},
    });
  });

  it('ADD with 0.3.1 adds ips[].version first', async () => {
    const r = await run(BASE_ENV, '{"cniVersion":"0.3.1","name":"n"}');
    expect(r.out).toContain('"ips": [\n        {\n            "version": "4",\n            "interface": 1,');
  });

  it('CNI_NETNS_OVERRIDE lets ADD run in the plugin\'s own netns', async () => {
    for (const v of ['1', 'true', 'TRUE']) {
      const funcs = recorder();
      const r = await run({ ...BASE_ENV, CNI_NETNS: '/proc/self/ns/net', CNI_NETNS_OVERRIDE: v }, CONF, funcs);
      expect(r.code).toBe(0);
      expect(funcs.calls.map((c) => c.command)).toEqual(['ADD']);
    }
  });

  it('DEL needs no netns and prints nothing', async () => {
    const funcs = recorder();
    const r = await run({ ...BASE_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, CONF, funcs);
    expect(r).toEqual({ code: 0, out: '', err: '' });
    expect(funcs.calls.map((c) => [c.command, c.args.netns])).toEqual([['DEL', '']]);
  });

  it('CHECK on 0.4.0 runs check and prints nothing', async () => {
    const funcs = recorder();
    const r = await run({ ...BASE_ENV, CNI_COMMAND: 'CHECK' }, '{"cniVersion":"0.4.0","name":"n"}', funcs);
    expect(r).toEqual({ code: 0, out: '', err: '' });
    expect(funcs.calls.map((c) => c.command)).toEqual(['CHECK']);
  });

  it('GC and STATUS need only CNI_PATH; without a function they succeed silently', async () => {
    for (const command of ['GC', 'STATUS']) {
      const r = await run({ CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin' }, '{"cniVersion":"1.1.0","name":"n"}');
      expect(r).toEqual({ code: 0, out: '', err: '' });
    }
  });

  it('GC and STATUS call the plugin function when there is one', async () => {
    const seen: string[] = [];
    const funcs = recorder({
      gc: async (a) => void seen.push(`gc:${a.command}`),
      status: async () => {
        throw new CniError(50, 'plugin not available', 'pool exhausted');
      },
    });
    const conf = '{"cniVersion":"1.1.0","name":"n"}';
    expect(await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf, funcs)).toEqual({ code: 0, out: '', err: '' });
    expect(seen).toEqual(['gc:GC']);
    const st = await run({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, conf, funcs);
    expect(st.code).toBe(1);
    expect(st.out).toBe(errorJson('1.1.0', 50, 'plugin not available', 'pool exhausted'));
  });
});

describe('runPlugin: VERSION and no command', () => {
  const versions = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
  const reply = (v: string) => JSON.stringify({ cniVersion: v, supportedVersions: versions }) + '\n';

  for (const [stdin, echoed] of [
    ['{"cniVersion":"0.4.0"}', '0.4.0'],
    ['{"cniVersion":"1.0.0"}', '1.0.0'],
    ['{}', '1.1.0'],
    ['{"cniVersion":"9.9.9"}', '1.1.0'],
    ['not json', '1.1.0'],
    ['', '1.1.0'],
  ] as const) {
    it(`VERSION with stdin ${JSON.stringify(stdin)} answers ${echoed}`, async () => {
      const r = await run({ CNI_COMMAND: 'VERSION' }, stdin);
      expect(r).toEqual({ code: 0, out: reply(echoed), err: '' });
    });
  }

  it('VERSION from a terminal does not read stdin', async () => {
    const io = captureIO({ CNI_COMMAND: 'VERSION' });
    io.stdinIsTTY = true;
    io.readStdin = () => {
      throw new Error('must not read');
    };
    expect(await runPlugin(recorder(), 'about', io)).toBe(0);
    expect(io.out()).toBe(reply('1.1.0'));
  });

  it('no CNI_COMMAND prints the about text and versions on stderr', async () => {
    const r = await run({}, '', recorder(), 'CNI bridge plugin v1.2.3');
    expect(r).toEqual({
      code: 0,
      out: '',
      err: 'CNI bridge plugin v1.2.3\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n',
    });
  });

  it('no CNI_COMMAND and no about text is a missing-variable error', async () => {
    const r = await run({}, '', recorder(), '');
    expect(r.code).toBe(1);
    expect(r.out).toBe(errorJson('1.1.0', 4, 'required env variables [CNI_COMMAND] missing'));
  });
});
