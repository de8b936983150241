// The CLI's output through the real thing (KUBEBUILDER_ASSETS; Kubernetes 1.30, where native
// sidecars exist too): every corpus file is injected — as YAML, and as the JSON stream the same
// objects make — and piped into `kubectl create --dry-run=server -f -`, as a user pipes `inject`
// into kubectl. kubectl must read the stream (block YAML, JSON), and the API server must accept
// every object it accepts uninjected: the file itself, as the control, gives exactly the same
// objects created and the same errors (kinds it does not serve, such as other projects' CRDs).
// Then `uninject` of the injected output gives the control's outcome again. kubectl is $KUBECTL or
// kubectl on PATH (.ci/run installs Debian's, 1.20).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { findPodTargets } from '../src/cli/documents.ts';
import { injectDocuments } from '../src/cli/inject.ts';
import { outputFormatOf, parseSource, printSources } from '../src/cli/manifests.ts';
import { uninjectSources } from '../src/cli/uninject.ts';
import { describeApiServers } from './support/envtest.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { readAsKubectl } from './support/kubectl-read.ts';

type Obj = Record<string, any>;

const CORPUS = new URL('./testdata/corpus/', import.meta.url).pathname;
const FILES = readdirSync(CORPUS).filter((f) => f.endsWith('.yaml')).sort();
const config = testConfig();

/** The top-level objects of a stream (a List's items too). */
const objectsOf = (objects: unknown[]): Obj[] => (objects as Obj[]).flatMap((o) => (o?.['kind']?.endsWith?.('List') && Array.isArray(o['items']) ? o['items'] : [o]));

const uninject = (text: string, name: string) => {
  const sources = [parseSource({ name, text })];
  uninjectSources(sources);
  return printSources(sources, outputFormatOf(sources, undefined));
};

/**
 * What kubectl said, comparable between runs: the objects created and the errors, sorted. Errors
 * name list indexes, which the injected containers shift (the control's containers[0] is the
 * injected pod's containers[1]): they are left out.
 */
const outcome = (run: { code: number | null; stdout: string; stderr: string }) => ({
  created: run.stdout.split('\n').filter((l) => l !== '').sort(),
  errors: run.stderr.split('\n').filter((l) => l !== '').map((l) => l.replace(/\[\d+\]/g, '[]')).sort(),
});

describeApiServers('inject output through kubectl create --dry-run=server', { minMinor: 30 }, (api) => {
  before(async () => {
    // Every namespace the corpus names, and the service accounts its bare Pods run as (the
    // ServiceAccount admission plugin refuses a Pod whose account does not exist).
    const namespaces = new Set<string>(['default']);
    const accounts = new Set<string>();
    for (const file of FILES) {
      for (const object of objectsOf(readAsKubectl(readFileSync(join(CORPUS, file), 'utf8')))) {
        const namespace = object?.['metadata']?.['namespace'] ?? 'default';
        if (typeof namespace === 'string') namespaces.add(namespace);
        for (const target of findPodTargets(object)) {
          const account = (target.pod as Obj)?.['spec']?.['serviceAccountName'];
          accounts.add(`${namespace}/${typeof account === 'string' && account !== '' ? account : 'default'}`);
        }
      }
    }
    for (const namespace of namespaces) {
      if (!['default', 'kube-system', 'kube-public', 'kube-node-lease'].includes(namespace)) await api().createNamespace(namespace);
    }
    for (const key of accounts) {
      const [namespace, name] = key.split('/') as [string, string];
      await api().ensureServiceAccount(namespace, name);
    }
  });

  test('the whole corpus: kubectl reads inject output (YAML and JSON), and the API server accepts what it accepts uninjected', { timeout: 600_000 }, async () => {
    // One stream of every file (four kubectl runs in all: each run reads the API server's discovery
    // and OpenAPI documents first, which costs more than the objects).
    const yamlOf = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
    const control: string[] = [];
    const injectedYaml: string[] = [];
    const injectedJson: string[] = [];
    for (const file of FILES) {
      const text = readFileSync(join(CORPUS, file), 'utf8');
      control.push(yamlOf(text));
      injectedYaml.push(yamlOf(injectDocuments(text, file, config, testRuntime, 'default').output));
      const jsonText = readAsKubectl(text).map((o) => `${JSON.stringify(o, null, 4)}\n`).join('');
      const json = injectDocuments(jsonText, file.replace(/\.yaml$/, '.json'), config, testRuntime, 'default').output;
      assert.ok(json === '' || json.startsWith('{'), `${file}: JSON in, JSON out`);
      injectedJson.push(json);
    }
    const dryRun = async (input: string) => outcome(await api().kubectl(['create', '--dry-run=server', '-f', '-'], { input, timeoutMs: 300_000 }));
    const expected = await dryRun(control.join('---\n'));
    const yaml = injectedYaml.join('---\n');
    assert.deepEqual(await dryRun(yaml), expected, 'injected YAML: the same objects accepted, the same errors');
    assert.deepEqual(await dryRun(injectedJson.join('')), expected, 'injected JSON: the same objects accepted, the same errors');
    assert.deepEqual(await dryRun(uninject(yaml, 'corpus.yaml')), expected, 'uninjected: the same again');
    // Most of the corpus is made of objects the API server serves: the test saw them accepted.
    const workloads = expected.created.filter((l) => /^(pod|deployment|statefulset|daemonset|replicaset|job|cronjob)\./.test(l));
    assert.ok(workloads.length >= 60, `${workloads.length} workloads accepted`);
  });
});
