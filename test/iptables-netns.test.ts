// Traffic capture proven on a real Linux network stack: every test creates its own "pod" and
// "peer" network namespaces joined by a veth pair, runs the real `envoy-injector init-iptables` in
// the pod namespace, and proves each rule by real TCP connections through stand-ins for Envoy
// (which recover the original destination with SO_ORIGINAL_DST and pass traffic through as UID
// 1337, like the bootstrap's passthrough clusters), the app and a remote server.
//
// NEEDS ROOT. Not root: these tests fail, saying so, unless NETNS_TESTS=skip asks
// to skip them. Root without iptables/ip/python3/setpriv: they fail (see test/support/netns.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  createTopology,
  leftoverNamespaces,
  programPath,
  requireRootAndTools,
  runInitIptables,
  sh,
  withTopology,
  type Listener,
  type Topology,
} from './support/netns.ts';

const TIMEOUT = { timeout: 180_000 };
const APP_UID = 1000;
const PROXY = { uid: 1337, gid: 1337 };

/** The stand-in Envoy: capture listeners on 15001/15006 for both families, running as 1337. */
function proxyListeners(ipv6: boolean): Listener[] {
  return ([4, ...(ipv6 ? [6] : [])] as (4 | 6)[]).flatMap((family) => [
    { port: 15001, family, role: 'outbound', name: 'outbound' } as const,
    { port: 15006, family, role: 'inbound', name: 'inbound' } as const,
  ]);
}

/** The app and Envoy's other ports (admin, readiness, metrics) as plain servers in the pod. */
function podListeners(ipv6: boolean, extraPorts: readonly number[] = []): Listener[] {
  const names: [number, string][] = [
    [8080, 'app'],
    [9090, 'app'],
    [15000, 'envoy-admin'],
    [15021, 'envoy-readiness'],
    [15090, 'envoy-metrics'],
    ...extraPorts.map((p): [number, string] => [p, 'app']),
  ];
  return ([4, ...(ipv6 ? [6] : [])] as (4 | 6)[]).flatMap((family) =>
    names.map(([port, name]) => ({ port, family, role: 'echo', name }) as const),
  );
}

/** A remote server in the peer namespace on every peer address. */
function remoteListeners(ipv6: boolean): Listener[] {
  return ([4, ...(ipv6 ? [6] : [])] as (4 | 6)[]).flatMap((family) =>
    [8080, 5432].map((port) => ({ port, family, role: 'echo', name: 'remote' }) as const),
  );
}

async function startServers(topo: Topology, ipv6: boolean, extraPodPorts: readonly number[] = []): Promise<void> {
  await topo.serve(topo.pod, proxyListeners(ipv6), PROXY);
  await topo.serve(topo.pod, podListeners(ipv6, extraPodPorts));
  await topo.serve(topo.peer, remoteListeners(ipv6));
}

/** `iptables-save -t nat` of one backend and family, without comments and counters. */
async function natRules(topo: Topology, backend: 'nft' | 'legacy', family: 4 | 6): Promise<string> {
  const text = await topo.exec(topo.pod, `${family === 4 ? 'iptables' : 'ip6tables'}-${backend}-save`, ['-t', 'nat']);
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.replace(/\[\d+:\d+\]/, '[0:0]'))
    .join('\n');
}

const jumpCount = (rules: string, from: string, to: string): number =>
  rules.split('\n').filter((l) => l.startsWith(`-A ${from} `) && l.endsWith(`-j ${to}`)).length;

/** The node's kube-proxy for the VIP case: the peer DNATs a Service VIP to the pod, masquerading hairpin traffic. */
async function addServiceVip(topo: Topology, ipv6: boolean): Promise<void> {
  await topo.exec(topo.peer, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await topo.exec(topo.peer, 'iptables-nft-restore', ['--noflush'], [
    '*nat',
    `-A PREROUTING -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination ${topo.podIp}:8080`,
    `-A POSTROUTING -s ${topo.podIp}/32 -d ${topo.podIp}/32 -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n'));
  if (!ipv6) return;
  await topo.exec(topo.peer, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
  await topo.exec(topo.peer, 'ip6tables-nft-restore', ['--noflush'], [
    '*nat',
    `-A PREROUTING -d fd96::10/128 -p tcp --dport 80 -j DNAT --to-destination [${topo.podIp6}]:8080`,
    `-A POSTROUTING -s ${topo.podIp6}/128 -d ${topo.podIp6}/128 -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n'));
}

for (const backend of ['nft', 'legacy'] as const) {
  describe(`capture with the ${backend} backend (needs root)`, () => {
    test(`every rule, proven by connections over IPv4 and IPv6 (${backend})`, TIMEOUT, async (t) => {
      if (!requireRootAndTools(t)) return;
      await withTopology(t, { ipv6: true }, async (topo) => {
        await startServers(topo, true);
        await addServiceVip(topo, true);
        const run = await runInitIptables(topo.pod, [
          '--exclude-inbound-ports=9090',
          '--exclude-outbound-ports=5432',
          `--exclude-outbound-ip-ranges=${topo.peerIp2}/32,${topo.peerIp6b}/128`,
          `--backend=${backend}`,
        ]);
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, new RegExp(`init-iptables: backend ${backend}: forced by --backend=${backend}`));
        assert.match(run.stdout, /IPv6: the pod has the global address fd77::1; applying the same policy with ip6tables/);
        assert.match(run.stdout, /added ::6\/128 to lo/);
        // The rules went to the chosen backend only.
        const other = backend === 'nft' ? 'legacy' : 'nft';
        for (const family of [4, 6] as const) {
          assert.equal(jumpCount(await natRules(topo, backend, family), 'OUTPUT', 'ENVOY_OUTBOUND'), 1);
          assert.doesNotMatch(await natRules(topo, other, family), /ENVOY_/);
        }

        const { pod, peer, podIp, peerIp, peerIp2, podIp6, peerIp6, peerIp6b } = topo;
        const cases: [string, string, Parameters<Topology['connect']>[1], string][] = [
          // Outbound from an app UID: captured by 15001, original destination recovered.
          ['app UID outbound is captured (IPv4)', pod, { host: peerIp, port: 8080, uid: APP_UID }, `outbound(${peerIp}:8080)>remote:8080 from ${podIp}`],
          ['app UID outbound is captured (IPv6)', pod, { host: peerIp6, port: 8080, uid: APP_UID }, `outbound([${peerIp6}]:8080)>remote:8080 from ${podIp6}`],
          // Outbound from the proxy UID or GID: not captured.
          ['proxy UID outbound is not captured (IPv4)', pod, { host: peerIp, port: 8080, uid: 1337 }, `remote:8080 from ${podIp}`],
          ['proxy UID outbound is not captured (IPv6)', pod, { host: peerIp6, port: 8080, uid: 1337 }, `remote:8080 from ${podIp6}`],
          ['proxy GID outbound is not captured', pod, { host: peerIp, port: 8080, uid: APP_UID, gid: 1337 }, `remote:8080 from ${podIp}`],
          // Excluded outbound ports and CIDRs: not captured.
          ['exclude-outbound-ports (IPv4)', pod, { host: peerIp, port: 5432, uid: APP_UID }, `remote:5432 from ${podIp}`],
          ['exclude-outbound-ports (IPv6)', pod, { host: peerIp6, port: 5432, uid: APP_UID }, `remote:5432 from ${podIp6}`],
          ['exclude-outbound-ip-ranges (IPv4)', pod, { host: peerIp2, port: 8080, uid: APP_UID }, `remote:8080 from ${podIp}`],
          ['exclude-outbound-ip-ranges (IPv6)', pod, { host: peerIp6b, port: 8080, uid: APP_UID }, `remote:8080 from ${podIp6}`],
          // Loopback: not captured.
          ['loopback 127.0.0.1 is not captured', pod, { host: '127.0.0.1', port: 8080, uid: APP_UID }, 'app:8080 from 127.0.0.1'],
          ['loopback ::1 is not captured', pod, { host: '::1', port: 8080, uid: APP_UID }, 'app:8080 from ::1'],
          ['the proxy reaching its admin port on 127.0.0.1 is not captured', pod, { host: '127.0.0.1', port: 15000, uid: 1337 }, 'envoy-admin:15000 from 127.0.0.1'],
          // Inbound from the other namespace to an app port: captured by 15006, then passed
          // through from 127.0.0.6 / ::6 to the app without looping back into the proxy.
          ['inbound to an app port is captured (IPv4)', peer, { host: podIp, port: 8080 }, `inbound(${podIp}:8080)>app:8080 from 127.0.0.6`],
          ['inbound to an app port is captured (IPv6)', peer, { host: podIp6, port: 8080 }, `inbound([${podIp6}]:8080)>app:8080 from ::6`],
          // Excluded inbound ports and the proxy's own ports: not captured.
          ['exclude-inbound-ports (IPv4)', peer, { host: podIp, port: 9090 }, `app:9090 from ${peerIp}`],
          ['exclude-inbound-ports (IPv6)', peer, { host: podIp6, port: 9090 }, `app:9090 from ${peerIp6}`],
          ['proxy port 15000 is not captured inbound', peer, { host: podIp, port: 15000 }, `envoy-admin:15000 from ${peerIp}`],
          ['proxy port 15021 is not captured inbound', peer, { host: podIp, port: 15021 }, `envoy-readiness:15021 from ${peerIp}`],
          ['proxy port 15090 is not captured inbound', peer, { host: podIp, port: 15090 }, `envoy-metrics:15090 from ${peerIp}`],
          ['proxy port 15021 is not captured inbound (IPv6)', peer, { host: podIp6, port: 15021 }, `envoy-readiness:15021 from ${peerIp6}`],
          // The app calling its own pod IP: outbound side, then inbound side, then the app.
          ['the app calling its own pod IP reaches the inbound side (IPv4)', pod, { host: podIp, port: 8080, uid: APP_UID }, `outbound(${podIp}:8080)>inbound(${podIp}:8080)>app:8080 from 127.0.0.6`],
          ['the app calling its own pod IP reaches the inbound side (IPv6)', pod, { host: podIp6, port: 8080, uid: APP_UID }, `outbound([${podIp6}]:8080)>inbound([${podIp6}]:8080)>app:8080 from ::6`],
          // A Service VIP that the node resolves to the pod itself.
          ['the app calling a Service VIP of itself reaches the inbound side (IPv4)', pod, { host: '10.96.0.10', port: 80, uid: APP_UID }, `outbound(10.96.0.10:80)>inbound(${podIp}:8080)>app:8080 from 127.0.0.6`],
          ['the app calling a Service VIP of itself reaches the inbound side (IPv6)', pod, { host: 'fd96::10', port: 80, uid: APP_UID }, `outbound([fd96::10]:80)>inbound([${podIp6}]:8080)>app:8080 from ::6`],
          // The passthrough source itself goes straight to the app.
          ['a connection from 127.0.0.6 is not looped', pod, { host: podIp, port: 8080, uid: 1337, bind: '127.0.0.6' }, 'app:8080 from 127.0.0.6'],
          ['a connection from ::6 is not looped', pod, { host: podIp6, port: 8080, uid: 1337, bind: '::6' }, 'app:8080 from ::6'],
        ];
        for (const [name, ns, target, expected] of cases) {
          await t.test(name, async () => assert.equal(await topo.connect(ns, target), expected));
        }
      });
    });

    test(`running twice changes nothing; a rerun with new flags replaces the rules (${backend})`, TIMEOUT, async (t) => {
      if (!requireRootAndTools(t)) return;
      await withTopology(t, { ipv6: true }, async (topo) => {
        const extraPorts = [9017, 7070];
        await startServers(topo, true, extraPorts);
        const flags = ['--exclude-inbound-ports=9090', `--backend=${backend}`];
        const first = await runInitIptables(topo.pod, flags);
        assert.equal(first.code, 0, first.stderr);
        const after1 = { 4: await natRules(topo, backend, 4), 6: await natRules(topo, backend, 6) };
        const second = await runInitIptables(topo.pod, flags);
        assert.equal(second.code, 0, second.stderr);
        for (const family of [4, 6] as const) {
          const after2 = await natRules(topo, backend, family);
          assert.equal(after2, after1[family], `IPv${family}: the second run left the nat table exactly as the first`);
          assert.equal(jumpCount(after2, 'PREROUTING', 'ENVOY_INBOUND'), 1);
          assert.equal(jumpCount(after2, 'OUTPUT', 'ENVOY_OUTBOUND'), 1);
        }
        // The second run removed the first run's jumps before adding its own.
        assert.match(second.stdout, /^-D PREROUTING .*-j ENVOY_INBOUND$/m);

        // Leftovers of a half-finished or older run: a duplicated jump and a chain no longer used.
        for (const tool of ['iptables', 'ip6tables']) {
          await topo.exec(topo.pod, `${tool}-${backend}-restore`, ['--noflush'], [
            '*nat',
            ':ENVOY_OLD - [0:0]',
            '-A ENVOY_OLD -p tcp -j RETURN',
            '-A OUTPUT -p tcp -j ENVOY_OLD',
            '-A OUTPUT -p tcp -m comment --comment "envoy-injector: outbound capture" -j ENVOY_OUTBOUND',
            'COMMIT',
            '',
          ].join('\n'));
        }
        // 20 excluded ports: two multiport rules (15 + 5); 9017 is in the second.
        const many = Array.from({ length: 20 }, (_, i) => 9000 + i);
        const third = await runInitIptables(topo.pod, [
          `--exclude-inbound-ports=${many.join(',')}`,
          '--include-inbound-ports=8080,9017,7070',
          `--include-outbound-ip-ranges=${topo.peerIp2}/32`,
          `--backend=${backend}`,
        ]);
        assert.equal(third.code, 0, third.stderr);
        for (const family of [4, 6] as const) {
          const rules = await natRules(topo, backend, family);
          assert.doesNotMatch(rules, /ENVOY_OLD/, `IPv${family}: the stale chain and its jump are gone`);
          assert.equal(jumpCount(rules, 'OUTPUT', 'ENVOY_OUTBOUND'), 1, `IPv${family}: one outbound jump`);
          assert.equal(jumpCount(rules, 'PREROUTING', 'ENVOY_INBOUND'), 1, `IPv${family}: one inbound jump`);
          assert.doesNotMatch(rules, /--dports 9090/, `IPv${family}: the old exclusion is gone`);
          assert.match(rules, /--dports 9000,9001,9002,9003,9004,9005,9006,9007,9008,9009,9010,9011,9012,9013,9014 /);
          assert.match(rules, /--dports 9015,9016,9017,9018,9019 /);
        }
        const { pod, peer, podIp, peerIp, peerIp2, podIp6, peerIp6 } = topo;
        const cases: [string, string, Parameters<Topology['connect']>[1], string][] = [
          ['an included inbound port is captured', peer, { host: podIp, port: 8080 }, `inbound(${podIp}:8080)>app:8080 from 127.0.0.6`],
          ['an inbound port not included is not captured', peer, { host: podIp, port: 9090 }, `app:9090 from ${peerIp}`],
          ['exclusion beats inclusion, also in the second multiport group', peer, { host: podIp, port: 9017 }, `app:9017 from ${peerIp}`],
          ['an included inbound port is captured (IPv6)', peer, { host: podIp6, port: 7070 }, `inbound([${podIp6}]:7070)>app:7070 from ::6`],
          ['an included outbound range is captured', pod, { host: peerIp2, port: 8080, uid: APP_UID }, `outbound(${peerIp2}:8080)>remote:8080 from ${podIp}`],
          ['an outbound destination not included is not captured', pod, { host: peerIp, port: 8080, uid: APP_UID }, `remote:8080 from ${podIp}`],
          ['IPv6 has no included range, so IPv6 outbound is not captured', pod, { host: peerIp6, port: 8080, uid: APP_UID }, `remote:8080 from ${podIp6}`],
        ];
        for (const [name, ns, target, expected] of cases) {
          await t.test(name, async () => assert.equal(await topo.connect(ns, target), expected));
        }
      });
    });
  });
}

describe('backend detection (needs root)', () => {
  test('a fresh namespace gets nft; one whose legacy tables hold rules gets legacy', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const fresh = await runInitIptables(topo.pod, ['--ipv6=false']);
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.match(fresh.stdout, /^envoy-injector init-iptables: backend nft: no rules in this network namespace yet; nft preferred$/m);
      assert.match(await natRules(topo, 'nft', 4), /-A OUTPUT .*-j ENVOY_OUTBOUND/);
    });
    await withTopology(t, {}, async (topo) => {
      // Something else in the pod (a CNI plugin, another init container) already uses legacy.
      await topo.exec(topo.pod, 'iptables-legacy', ['-t', 'filter', '-A', 'INPUT', '-p', 'udp', '--dport', '9', '-j', 'DROP']);
      const run = await runInitIptables(topo.pod, ['--ipv6=false']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^envoy-injector init-iptables: backend legacy: its tables already hold 1 rules in this network namespace$/m);
      assert.match(await natRules(topo, 'legacy', 4), /-A OUTPUT .*-j ENVOY_OUTBOUND/);
      assert.doesNotMatch(await natRules(topo, 'nft', 4), /ENVOY_/);
      // And a rerun stays there.
      const again = await runInitIptables(topo.pod, ['--ipv6=false']);
      assert.match(again.stdout, /backend legacy: its tables already hold \d+ rules/);
    });
  });

  test('an image with only unsuffixed iptables-save/-restore uses the backend they report', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    // Older distributions ship only `iptables-restore`; here it is the legacy multi-call binary.
    const bin = mkdtempSync(join(tmpdir(), 'ei-ipt-plain-'));
    t.after(() => rmSync(bin, { recursive: true, force: true }));
    for (const tool of ['iptables-save', 'iptables-restore']) symlinkSync(programPath('xtables-legacy-multi'), join(bin, tool));
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, ['--ipv6=false'], { path: bin });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /backend legacy: no rules in this network namespace yet; nft is not usable \(missing binary: iptables-nft-save/);
      assert.match(run.stdout, /^# IPv4: iptables-restore --noflush --wait=30$/m);
      assert.match(await natRules(topo, 'legacy', 4), /-A OUTPUT .*-j ENVOY_OUTBOUND/);
    });
  });
});

describe('IPv6 behaves as documented (needs root)', () => {
  test('--ipv6=false with a global IPv6 address fails closed and applies nothing', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, { ipv6: true }, async (topo) => {
      const run = await runInitIptables(topo.pod, ['--ipv6=false']);
      assert.equal(run.code, 6);
      assert.equal(
        run.stderr,
        'envoy-injector init-iptables: IPv6 would escape the proxy: the pod has the global IPv6 address fd77::1 but IPv6 ' +
          'capture is off (--ipv6=false, from the annotation envoy-injector.io/ipv6 or the config key proxy.ipv6); set it ' +
          'to auto or true so the proxy listens on [::] and IPv6 is captured\n',
      );
      for (const backend of ['nft', 'legacy'] as const) {
        assert.doesNotMatch(await natRules(topo, backend, 4), /ENVOY_/);
      }
    });
  });

  test('--ipv6=false without a global IPv6 address captures IPv4 only', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, ['--ipv6=false']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /IPv6: not captured \(--ipv6=false\); the pod has no global IPv6 address/);
      assert.match(await natRules(topo, 'nft', 4), /ENVOY_OUTBOUND/);
      assert.doesNotMatch(await natRules(topo, 'nft', 6), /ENVOY_/);
    });
  });

  test('--ipv6=auto without a global address installs the IPv6 rules, so an address added later is captured', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, []);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /IPv6: no global address yet; applying the same policy with ip6tables/);
      assert.match(await natRules(topo, 'nft', 6), /-A OUTPUT .*-j ENVOY_OUTBOUND/);
      // Addresses appear after the init container ran.
      const vethPod = (await topo.exec(topo.pod, 'ip', ['-o', 'link', 'show', 'type', 'veth'])).split(':')[1]?.trim().split('@')[0] ?? '';
      const vethPeer = (await topo.exec(topo.peer, 'ip', ['-o', 'link', 'show', 'type', 'veth'])).split(':')[1]?.trim().split('@')[0] ?? '';
      await topo.exec(topo.pod, 'ip', ['-6', 'addr', 'add', `${topo.podIp6}/64`, 'dev', vethPod, 'nodad']);
      await topo.exec(topo.peer, 'ip', ['-6', 'addr', 'add', `${topo.peerIp6}/64`, 'dev', vethPeer, 'nodad']);
      await startServers(topo, true);
      assert.equal(
        await topo.connect(topo.pod, { host: topo.peerIp6, port: 8080, uid: APP_UID }),
        `outbound([${topo.peerIp6}]:8080)>remote:8080 from ${topo.podIp6}`,
      );
      assert.equal(
        await topo.connect(topo.peer, { host: topo.podIp6, port: 8080 }),
        `inbound([${topo.podIp6}]:8080)>app:8080 from ::6`,
      );
    });
  });

  test('without ip6tables: a note when there is no global IPv6 address, a failure when there is', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    // A PATH holding the real IPv4 tools and ip, but no ip6tables at all (an image built without it).
    const bin = mkdtempSync(join(tmpdir(), 'ei-ipt-bin-'));
    t.after(() => rmSync(bin, { recursive: true, force: true }));
    for (const tool of ['iptables-nft-save', 'iptables-nft-restore', 'iptables-legacy-save', 'iptables-legacy-restore', 'ip']) {
      symlinkSync(programPath(tool), join(bin, tool));
    }
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, [], { path: bin });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /note: IPv6 rules not installed: missing binary: ip6tables-nft-save is not installed \(not found in PATH\)/);
      assert.match(run.stdout, /traffic capture installed with nft \(IPv4\)/);
    });
    await withTopology(t, { ipv6: true }, async (topo) => {
      const run = await runInitIptables(topo.pod, [], { path: bin });
      assert.equal(run.code, 3);
      assert.equal(run.stderr, 'envoy-injector init-iptables: missing binary: ip6tables-nft-save is not installed (not found in PATH)\n');
    });
  });
});

describe('IPv6 without iproute2 (needs root)', () => {
  test('without ip: ::6 cannot be added; a note without a global IPv6 address, a failure with one', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    // Every iptables program, but no `ip` (an image without iproute2).
    const bin = mkdtempSync(join(tmpdir(), 'ei-ipt-noip-'));
    t.after(() => rmSync(bin, { recursive: true, force: true }));
    for (const family of ['iptables', 'ip6tables']) {
      for (const backend of ['nft', 'legacy']) {
        for (const action of ['save', 'restore']) {
          const tool = `${family}-${backend}-${action}`;
          symlinkSync(programPath(tool), join(bin, tool));
        }
      }
    }
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, [], { path: bin });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /note: cannot add ::6\/128 to lo: missing binary: ip is not installed \(not found in PATH\)/);
      assert.match(await natRules(topo, 'nft', 6), /-A OUTPUT .*-j ENVOY_OUTBOUND/, 'the IPv6 rules are installed');
    });
    await withTopology(t, { ipv6: true }, async (topo) => {
      const run = await runInitIptables(topo.pod, [], { path: bin });
      assert.equal(run.code, 3);
      assert.equal(
        run.stderr,
        'envoy-injector init-iptables: cannot add ::6/128 to lo: missing binary: ip is not installed (not found in PATH)\n',
      );
    });
  });
});

describe('errors are one clear line with an exit code naming the cause (needs root)', () => {
  test('missing iptables binaries: exit 3', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    const empty = mkdtempSync(join(tmpdir(), 'ei-ipt-empty-'));
    t.after(() => rmSync(empty, { recursive: true, force: true }));
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, ['--ipv6=false'], { path: empty });
      assert.equal(run.code, 3);
      assert.equal(
        run.stderr,
        'envoy-injector init-iptables: no usable iptables backend (nft: missing binary: iptables-nft-save is not installed ' +
          '(not found in PATH); legacy: missing binary: iptables-legacy-save is not installed (not found in PATH))\n',
      );
      const forced = await runInitIptables(topo.pod, ['--ipv6=false', '--backend=legacy'], { path: empty });
      assert.equal(forced.code, 3);
      assert.match(forced.stderr, /^envoy-injector init-iptables: --backend=legacy is not usable: missing binary: iptables-legacy-save/);
    });
  });

  test('no permission (no NET_ADMIN, as in a pod that was not granted it): exit 4', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    await withTopology(t, {}, async (topo) => {
      const run = await runInitIptables(topo.pod, [], { noCapabilities: true });
      assert.equal(run.code, 4);
      assert.equal(
        run.stderr,
        'envoy-injector init-iptables: no permission: this process (uid 0) lacks CAP_NET_ADMIN; run it as root with ' +
          'NET_ADMIN and NET_RAW in the pod network namespace\n',
      );
    });
  });
});

describe('test namespaces (needs root)', () => {
  test('are removed even when a test fails', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    let names: string[] = [];
    await assert.rejects(
      withTopology(t, {}, async (topo) => {
        names = [topo.pod, topo.peer];
        await topo.serve(topo.pod, [{ port: 8080, family: 4, role: 'echo', name: 'app' }]);
        throw new Error('the test body failed');
      }),
      /the test body failed/,
    );
    const list = await sh('ip', ['netns', 'list']);
    for (const name of names) assert.ok(!list.includes(name), `${name} was removed`);
  });

  test('none is left behind by this file', TIMEOUT, async (t) => {
    if (!requireRootAndTools(t)) return;
    const topo = await createTopology();
    await topo.remove();
    assert.deepEqual(await leftoverNamespaces(), []);
  });
});
