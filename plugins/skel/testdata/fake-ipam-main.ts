// Entry point of the fake-ipam fixture when bundled as an executable.
import { runPlugin } from '../index.ts';
import { fakeIpam } from './fake-ipam.ts';

void runPlugin(fakeIpam, 'fake ipam for tests').then((code) => process.exit(code));
