#!/usr/bin/env node
// The ringtrain command. The sources are TypeScript run through tsx, so that
// `npm ci` is the only step between a clone and a working command.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
