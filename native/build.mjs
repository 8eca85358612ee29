// Builds the native binding (native/build/Release/moa_native.node) against the libtorch that
// find-libtorch.mjs finds. Skips the build when nothing changed since the last one; --force rebuilds.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const addon = join(here, 'build', 'Release', 'moa_native.node');
const stampFile = join(here, 'build', 'moa-build-stamp');

function fail(message) {
  console.error(`\nmoa: the native binding was not built.\n${message}\n`);
  process.exit(1);
}

let torch;
try {
  torch = findLibtorch();
} catch (e) {
  fail(e.message);
}

const sources = ['binding.gyp', ...readdirSync(join(here, 'src')).map((f) => join('src', f))].sort();
const stamp = createHash('sha256')
  .update(JSON.stringify({ torch, node: process.version }))
  .update(Buffer.concat(sources.map((f) => readFileSync(join(here, f)))))
  .digest('hex');

if (!process.argv.includes('--force') && existsSync(addon) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.log(`moa: native binding is up to date (libtorch from ${torch.source})`);
  process.exit(0);
}

// Build against the headers of the Node that runs this script: no header download.
const nodedir = process.env.npm_config_nodedir || join(dirname(process.execPath), '..');
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  fail(`Node's headers were not found under ${nodedir}/include/node. Set npm_config_nodedir to the folder that holds include/node.`);
}

const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
console.log(`moa: building the native binding against libtorch from ${torch.source} (${torch.libDir})${torch.cuda ? ' with CUDA' : ''}`);
const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', '--loglevel=warn', `--nodedir=${nodedir}`, `--jobs=${availableParallelism()}`], {
  cwd: here,
  stdio: 'inherit',
  env: {
    ...process.env,
    MOA_TORCH_INCLUDE: torch.includeDirs.join(':'),
    MOA_TORCH_LIBDIR: torch.libDir,
    MOA_TORCH_LIBS: torch.libs.join(':'),
    MOA_TORCH_CXX11_ABI: torch.cxx11Abi ? '1' : '0',
  },
});
if (result.status !== 0) fail('The C++ build failed (see the compiler output above).');
writeFileSync(stampFile, stamp);
console.log(`moa: built ${addon}`);
