// Start-up stub placed at the top of every executable by scripts/build.mjs.
// The program itself follows as `//`-prefixed lines (so Node only skips a
// comment while loading this file). The stub extracts it and compiles it
// with a V8 code cache kept next to the native addons, which saves most of
// the parse/compile work on every run after the first. The cache is keyed by
// the file's identity and V8 itself rejects one that does not match.
'use strict';
(() => {
  const fs = require('fs');
  const vm = require('vm');
  const path = require('path');
  const os = require('os');
  const file = __filename;
  const text = fs.readFileSync(file, 'utf8');
  // lastIndexOf: this stub's own copy of the marker text comes first.
  const begin = text.lastIndexOf('\n//KN-MAIN-BEGIN\n');
  const end = text.indexOf('\n//KN-MAIN-END\n', begin);
  const body = text
    .slice(begin + 17, end)
    .split('\n')
    .map((l) => l.slice(2))
    .join('\n');
  const src = '(function (exports, require, module, __filename, __dirname) {' + body + '\n})';

  let cachePath;
  let cached;
  try {
    const uid = process.getuid ? process.getuid() : 0;
    const dir = process.env.KN_NATIVE_DIR || (uid === 0 ? '/run/kube-netstack' : path.join(os.tmpdir(), 'kube-netstack-' + uid));
    const st = fs.statSync(file);
    cachePath = path.join(dir, path.basename(file) + '-' + st.size + '-' + Math.floor(st.mtimeMs) + '-' + st.ino + '.jscache');
    const d = fs.statSync(dir);
    if (d.uid === uid && (d.mode & 0o022) === 0) cached = fs.readFileSync(cachePath);
  } catch {
    // no cache yet
  }
  const script = new vm.Script(src, { filename: file, cachedData: cached });
  if ((!cached || script.cachedDataRejected) && cachePath) {
    process.once('exit', () => {
      try {
        const dir = path.dirname(cachePath);
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        const tmp = cachePath + '.' + process.pid;
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        fs.renameSync(tmp, cachePath);
        // Caches of earlier builds of this executable are dead weight now.
        const base = path.basename(file) + '-';
        for (const f of fs.readdirSync(dir)) {
          if (f.startsWith(base) && f.endsWith('.jscache') && path.join(dir, f) !== cachePath) fs.rmSync(path.join(dir, f), { force: true });
        }
      } catch {
        // a read-only or foreign cache directory only costs speed
      }
    });
  }
  script.runInThisContext()(exports, require, module, file, __dirname);
})();
