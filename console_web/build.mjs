// Bundles the console's JavaScript into bridge_server/console/static/console.js (committed, so the wheel ships it).
// Rebuild after editing src/: `npm ci && npm run build` (docs/console.md).
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';

const out = '../bridge_server/console/static';
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox115'],
  outfile: `${out}/console.js`,
  legalComments: 'linked', // three.js / three-vrm MIT notices go to console.js.LEGAL.txt beside the bundle
  logLevel: 'info',
});
// index.html and style.css are hand-written and live only in static/ (nothing to build for them).
