// The wire-format fake API server as a child process, so it can run inside a network namespace a
// test created (the CNI plugin runs in the "node" namespace and must reach its API server there).
// argv[2]: JSON {kubeconfig: path, pods: [...]}. Prints READY once the kubeconfig is written, serves
// until its standard input closes.
import { startFakeApiServer } from './fake-apiserver.ts';

const input = JSON.parse(process.argv[2] ?? '{}') as { kubeconfig: string; pods: Record<string, unknown>[] };
const server = await startFakeApiServer();
for (const pod of input.pods) server.put('pods', pod);
server.writeKubeconfig(input.kubeconfig);
process.stdout.write('READY\n');
process.stdin.resume();
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
process.stdin.on('close', () => void server.close().then(() => process.exit(0)));
