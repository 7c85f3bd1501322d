/**
 * Inlining (inline-modules.ts): modules joined into one script run as they would as
 * separate files, each in its own scope; what cannot be carried throws; text that would
 * end a <script> or <style> early is escaped without changing what it means.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { DASHBOARD_DIR } from './dashboard.js';
import { bundleModules, fillTemplate, InlineError, jsonScriptText, scriptText, styleText } from './inline-modules.js';

/** Runs a bundle as a module script would (strict), with `out` to report through. */
function run(script: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  runInNewContext(`'use strict';\n${script}`, { out });
  return out;
}

test('modules join into one script: imports (renamed too) bind to the exports of modules before, each module keeps its own scope', () => {
  const script = bundleModules(
    [
      { name: 'a.js', source: "const secret = 2;\nexport function double(x) {\n  return x * secret;\n}\nexport const NAME = 'a';\n" },
      { name: 'b.js', source: "import { double, NAME as aName } from './a.js';\nconst secret = 10;\nexport class B {\n  value() { return double(secret) + aName; }\n}\n" },
      { name: 'c.js', source: "import { B } from './b.js';\nimport { double } from './a.js';\nexport async function go() { return [new B().value(), double(1)]; }\n" },
    ],
    'out.result = go();',
  );
  const out = run(script);
  // (An array from the other realm: copied to compare.)
  return (out.result as Promise<unknown[]>).then((r) => assert.deepEqual([...r], ['20a', 2]));
});

test('what the bundle cannot carry throws with the module named', () => {
  const cases: [string, RegExp][] = [
    ["import { x } from './missing.js';\n", /m\.js: imports \.\/missing\.js/],
    ["import x from './a.js';\n", /m\.js: cannot inline "import x from/],
    ["import * as a from './a.js';\n", /cannot inline "import \* as a/],
    ["export default function f() {}\n", /cannot inline "export default/],
    ['const x = 1;\nexport { x };\n', /cannot inline "export \{ x \}/],
    ["const m = await import('./a.js');\n", /cannot inline "import\('\.\/a\.js'\)/],
    ["import { x } from 'uplot';\n", /cannot inline "import \{ x \} from 'uplot'/],
  ];
  for (const [source, message] of cases) {
    assert.throws(() => bundleModules([{ name: 'a.js', source: 'export const y = 1;' }, { name: 'm.js', source }], ''), (err: Error) => err instanceof InlineError && message.test(err.message), source);
  }
});

test("the dashboard's own modules bundle (report.html's script) and name what report.js exports", () => {
  const modules = ['charts.js', 'view.js', 'report.js'].map((name) => ({ name, source: readFileSync(join(DASHBOARD_DIR, name), 'utf8') }));
  const script = bundleModules(modules, 'out.kind = typeof renderReport;');
  // Defining the modules touches no browser global: only calling them does.
  assert.deepEqual(run(script), { kind: 'function' });
});

test('scriptText: no "</script" or "<!--" is left, and the JavaScript means the same', () => {
  const js = "out.s = '</script><script>x</SCRIPT>'; out.t = `<!-- ${1} -->`; out.r = /<\\/script>/i.test('</Script>'); out.u = /<!--/u.test('<!--');";
  const safe = scriptText(js);
  assert.doesNotMatch(safe, /<\/script|<!--/i);
  assert.deepEqual(run(safe), { s: '</script><script>x</SCRIPT>', t: '<!-- 1 -->', r: true, u: true });
  assert.deepEqual(run(safe), run(js));
});

test('jsonScriptText: no "<" at all, and JSON.parse gives the value back', () => {
  const value = { name: '</script><script>alert(1)</script>', nested: ['<!--', 'a\u2028b', 'é'], n: 1.5 };
  const text = jsonScriptText(value);
  assert.ok(!text.includes('<'));
  assert.deepEqual(JSON.parse(text), value);
});

test('styleText: no "</style" is left', () => {
  const css = "a::after { content: '</style><script>x</script>'; } /* </STYLE> */";
  assert.doesNotMatch(styleText(css), /<\/style/i);
  assert.equal(styleText('a { color: red; }'), 'a { color: red; }');
});

test("fillTemplate: each name once, parts taken literally (minified code's $& and $' stay), no value left unfilled", () => {
  const parts = { a: "x.replace(/y/g, '$&$1$\\'')", b: '{{a}}' };
  assert.equal(fillTemplate('<{{a}}|{{b}}>', parts), `<${parts.a}|{{a}}>`);
  assert.throws(() => fillTemplate('{{a}}{{a}}{{b}}', parts), /\{\{a\}\} 2 times/);
  assert.throws(() => fillTemplate('{{b}}', parts), /\{\{a\}\} 0 times/);
  assert.throws(() => fillTemplate('{{a}}{{b}}{{c}}', parts), /\{\{c\}\} has no value/);
});
