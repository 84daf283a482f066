// The conflist that deploy/kube-flannel.yml's ConfigMap installs, through
// this plugin: the runtime passes the flannel plugin object (plus name and
// cniVersion), and the plugin delegates to bridge + host-local exactly as
// upstream's flannel CNI plugin does with that config. (The manifests
// themselves are tested in test/deploy/manifests.test.ts.)
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { buildDelegate, parseFlannelConf, renderDelegate } from './delegate.ts';
import { parseFlannelSubnetEnv } from './subnet-env.ts';

type Obj = Record<string, any>;

const MANIFEST = resolve(import.meta.dirname, '../../deploy/kube-flannel.yml');

describe("deploy/kube-flannel.yml's cni-conf.json", () => {
  const docs = parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map((d) => d.toJS() as Obj | null);
  const cm = docs.find((d) => d?.kind === 'ConfigMap' && d.metadata?.name === 'kube-flannel-cfg')!;

  test("upstream's conflist, which our plugin turns into upstream's delegate", () => {
    const list = JSON.parse(cm.data['cni-conf.json'] as string) as Obj;
    expect(list).toEqual({
      name: 'cbr0',
      cniVersion: '0.3.1',
      plugins: [
        { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    const conf = parseFlannelConf({ ...list.plugins[0], name: list.name, cniVersion: list.cniVersion });
    const env = parseFlannelSubnetEnv('subnet.env', 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    expect(renderDelegate(buildDelegate(conf, env)).toString()).toBe(
      '{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}',
    );
  });
});
