/**
 * Putting the dashboard's ES modules, uPlot and data inside one HTML file (report.html),
 * so that it opens from disk with no server and nothing fetched.
 *
 * A page opened from file:// cannot import its modules from other files, and an inline
 * module cannot import another inline one. So `bundleModules` joins the modules into one
 * script, each in its own function scope: a module's `export function|const|let|class
 * NAME` loses its `export` and NAME is returned from the scope; its `import { a, b as c }
 * from './x.js';` becomes `const { a, b: c } = <x.js's returned names>;`. That is the
 * whole of the syntax the dashboard's modules use; anything else (a default export, a
 * bare or dynamic import, an import of a module not given) throws, so a change to them
 * that this cannot carry fails the report's tests, not a user's page.
 *
 * Inside a <script> element the HTML parser ends the script at the first `</script` and
 * treats `<!--` specially, whatever the JavaScript around it; `scriptText` writes the `<`
 * of both as `\x3c`, which means `<` inside a string, a template or a regular expression,
 * where such text can stand. Data goes in as JSON (`jsonScriptText`) with every `<` as
 * `\u003c`, which JSON.parse reads back unchanged; CSS (`styleText`) with `</style` as
 * `<\/style`.
 */

export interface Module {
  /** The file name other modules import it by: `charts.js` for `from './charts.js'`. */
  readonly name: string;
  readonly source: string;
}

export class InlineError extends Error {
  override readonly name = 'InlineError';
}

const IMPORT = /^import\s*\{([^}]*)\}\s*from\s*'\.\/([\w.-]+\.js)';?[ \t]*$/gm;
const EXPORT = /^export\s+(?:async\s+)?(?:function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)/gm;

/** `a, b as c` -> `a, b: c` (destructuring) */
function bindings(list: string, where: string): string {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const m = /^([A-Za-z_$][\w$]*)(?:\s+as\s+([A-Za-z_$][\w$]*))?$/.exec(s);
      if (!m) throw new InlineError(`${where}: cannot inline the import of "${s}"`);
      return m[2] ? `${m[1]}: ${m[2]}` : m[1]!;
    })
    .join(', ');
}

/**
 * One script from `modules`, in order: a module may import only the ones before it.
 * The script runs `entry` (plain statements, which may use the last module's exports)
 * after them.
 */
export function bundleModules(modules: readonly Module[], entry: string): string {
  const scopes = new Map<string, string>();
  const parts: string[] = [];
  let exported = '';
  for (const [i, m] of modules.entries()) {
    const scope = `__module${i}`;
    let body = m.source.replace(IMPORT, (_, list: string, from: string) => {
      const other = scopes.get(from);
      if (other === undefined) throw new InlineError(`${m.name}: imports ./${from}, which is not among the modules before it`);
      return `const { ${bindings(list, m.name)} } = ${other};`;
    });
    const names: string[] = [];
    body = body.replace(EXPORT, (whole, name: string) => {
      names.push(name);
      return whole.replace(/^export\s+/, '');
    });
    const stray = /^\s*(?:import\b(?!\s*\()|export\b)/m.exec(body) ?? /\bimport\s*\(/.exec(body);
    if (stray) throw new InlineError(`${m.name}: cannot inline "${body.slice(stray.index, stray.index + 60).trim()}"`);
    scopes.set(m.name, scope);
    exported = `const { ${names.join(', ')} } = ${scope};`;
    parts.push(`// ---- ${m.name}\nconst ${scope} = (() => {\n${body}\nreturn { ${names.join(', ')} };\n})();`);
  }
  return `${parts.join('\n')}\n${exported}\n${entry}\n`;
}

/** JavaScript made safe to stand between <script> and </script>. */
export function scriptText(js: string): string {
  return js.replace(/<(?=\/script|!--)/gi, '\\x3c');
}

/** CSS made safe to stand inside <style>: `</style` can only be in a string or a comment, where `\/` is `/`. */
export function styleText(css: string): string {
  return css.replace(/<\/(?=style)/gi, '<\\/');
}

/** `value` as JSON that can stand inside <script type="application/json">. */
export function jsonScriptText(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

/**
 * `template` with each `{{name}}` replaced by `parts[name]`, each name exactly once.
 * (A function replacer: a part's own `$&` or `$'`, common in minified code, stays as it is.)
 */
export function fillTemplate(template: string, parts: Readonly<Record<string, string>>): string {
  for (const name of Object.keys(parts)) {
    const count = template.split(`{{${name}}}`).length - 1;
    if (count !== 1) throw new InlineError(`the template has {{${name}}} ${count} times, not once`);
  }
  return template.replace(/\{\{(\w+)\}\}/g, (whole, name: string) => {
    const part = parts[name];
    if (part === undefined) throw new InlineError(`the template's ${whole} has no value`);
    return part;
  });
}
