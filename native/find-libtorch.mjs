// Finds the libtorch to build against, in the order DESIGN.md gives:
// $LIBTORCH, then an installed PyTorch (which brings CUDA), then the system (Debian).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const INSTALL_HINT =
  'moa needs libtorch. On Debian/Ubuntu: sudo apt-get install -y libtorch-dev libopenblas0-pthread\n' +
  'Or point LIBTORCH at an unpacked libtorch folder (with include/ and lib/), or install PyTorch for python3.';

function hasCxx11Abi(libDir) {
  // libc10 names std::string as std::__cxx11::basic_string only when built with the new ABI.
  const lib = readdirSync(libDir).find((f) => /^libc10\.so/.test(f));
  if (!lib) return true;
  return readFileSync(join(libDir, lib)).includes('__cxx1112basic_string');
}

function fromFolder(root, source, abi) {
  const include = join(root, 'include');
  const libDir = join(root, 'lib');
  if (!existsSync(join(include, 'ATen', 'ATen.h')) || !existsSync(join(libDir, 'libtorch_cpu.so'))) return null;
  return describe(source, root, [include, join(include, 'torch', 'csrc', 'api', 'include')], libDir, abi);
}

function describe(source, root, includeDirs, libDir, abi) {
  const cuda = existsSync(join(libDir, 'libtorch_cuda.so'));
  const libs = ['c10', 'torch', 'torch_cpu', ...(cuda ? ['torch_cuda', 'c10_cuda'] : [])];
  return { source, root, includeDirs, libDir, libs, cuda, cxx11Abi: abi ?? hasCxx11Abi(libDir) };
}

function fromEnv() {
  const root = process.env.LIBTORCH;
  if (!root) return null;
  const found = fromFolder(root, 'LIBTORCH', undefined);
  if (!found) throw new Error(`LIBTORCH=${root} does not hold include/ATen/ATen.h and lib/libtorch_cpu.so.\n${INSTALL_HINT}`);
  return found;
}

function fromPython() {
  const script =
    'import json, os, torch, torch.utils\n' +
    'print(json.dumps({"root": os.path.dirname(torch.__file__), "abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}))';
  for (const python of [process.env.PYTHON, 'python3'].filter(Boolean)) {
    try {
      const out = execFileSync(python, ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 });
      const { root, abi } = JSON.parse(out.toString());
      const found = fromFolder(root, `PyTorch (${python})`, abi);
      if (found) return found;
    } catch {
      // no python, or no torch in it: try the next place
    }
  }
  return null;
}

function fromSystem() {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch] ?? process.arch;
  for (const libDir of [`/usr/lib/${arch}-linux-gnu`, '/usr/lib', '/usr/local/lib']) {
    for (const include of ['/usr/include', '/usr/local/include']) {
      if (existsSync(join(libDir, 'libtorch_cpu.so')) && existsSync(join(include, 'ATen', 'ATen.h'))) {
        return describe('system', libDir, [include, join(include, 'torch', 'csrc', 'api', 'include')], libDir);
      }
    }
  }
  return null;
}

export function findLibtorch() {
  const found = fromEnv() ?? fromPython() ?? fromSystem();
  if (!found) throw new Error(`libtorch was not found.\n${INSTALL_HINT}`);
  return found;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(JSON.stringify(findLibtorch(), null, 2));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
