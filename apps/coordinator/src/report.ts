/**
 * report.html in a run's output directory: the run's pictures after the fact, for
 * `ringtrain train` and the coordinator alike. One self-contained file that opens from
 * disk with no server and fetches nothing (its Content-Security-Policy allows nothing
 * but what is inline): the template dashboard/report.html with, inlined, uPlot's script
 * and style from node_modules, the dashboard's style, its chart code and view helpers
 * (charts.js, view.js: the same files the live dashboard serves) with report.js that
 * fills the page, and the report's data (report-data.ts) as a JSON script element.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stepsPerEpoch } from '@ringtrain/data';
import { writeFileAtomic } from '@ringtrain/model';
import { readStepLosses } from '@ringtrain/train';
import { DASHBOARD_DIR, UPLOT_FILES } from './dashboard.js';
import { bundleModules, fillTemplate, jsonScriptText, type Module, scriptText, styleText } from './inline-modules.js';
import { reportData, type ReportData, type ReportInput } from './report-data.js';

export const REPORT_FILE = 'report.html';

/** The dashboard modules the report runs, each after those it imports. */
const MODULES = ['charts.js', 'view.js', 'report.js'] as const;

/** Runs once the modules are defined: report.js's renderReport on the embedded data. */
const ENTRY = `renderReport(JSON.parse(document.getElementById('report-data').textContent));`;

const read = (path: string): Promise<string> => readFile(path, 'utf8');

/** The page for `data`, everything inlined. */
export async function reportHtml(data: ReportData): Promise<string> {
  const [template, style, uplotCss, uplotJs, ...sources] = await Promise.all([
    read(join(DASHBOARD_DIR, 'report.html')),
    read(join(DASHBOARD_DIR, 'style.css')),
    read(UPLOT_FILES.css),
    read(UPLOT_FILES.js),
    ...MODULES.map((name) => read(join(DASHBOARD_DIR, name))),
  ]);
  const modules: Module[] = MODULES.map((name, i) => ({ name, source: sources[i]! }));
  return fillTemplate(template, {
    style: styleText(`${uplotCss}\n${style}`),
    uplot: scriptText(uplotJs),
    data: jsonScriptText(data),
    script: scriptText(bundleModules(modules, ENTRY)),
  });
}

/**
 * Writes OUT/report.html for a run that ended (completed or interrupted), with the
 * step losses of OUT/steps.jsonl; returns its path.
 */
export async function writeReport(outDir: string, input: Omit<ReportInput, 'steps'>): Promise<string> {
  const { spec, data, summary } = input;
  const steps = await readStepLosses(outDir, Math.max(summary.steps, stepsPerEpoch(data.train.rows, spec.training.batchSize) * spec.training.epochs));
  const html = await reportHtml(await reportData({ ...input, steps }));
  const path = join(outDir, REPORT_FILE);
  await writeFileAtomic(path, html);
  return path;
}
