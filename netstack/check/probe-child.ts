// The prober as a child process on the project's Node 24 (see probe.ts,
// runProbesInChild): reads { probes, opts } as JSON on stdin, runs them in
// this process and writes the results as JSON on stdout.
import { runProbesHere, type ProbeOptions } from './probe.ts';
import type { Probe } from './types.ts';

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const input = JSON.parse(Buffer.concat(chunks).toString()) as { probes: Probe[]; opts: ProbeOptions };
const results = await runProbesHere(input.probes, input.opts);
process.stdout.write(JSON.stringify(results));
