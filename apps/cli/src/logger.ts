/**
 * The process's one root logger. JSON lines (pino's format) when stderr is not a
 * terminal, so that log collectors and tests can parse them; a compact
 * "LEVEL msg key=value" line when a person is watching.
 */
import { pino, type Logger } from 'pino';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function humanLine(line: string): string {
  const { level, msg, time: _time, pid: _pid, hostname: _host, ...rest } = JSON.parse(line) as Record<string, unknown>;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${LEVELS[level as number] ?? String(level)} ${String(msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

export function createLogger(level: string, pretty = process.stderr.isTTY === true): Logger {
  // On a terminal a progress line may be showing: clear it first (it is redrawn on the next update).
  const destination = pretty ? { write: (line: string) => process.stderr.write(`\r\x1b[K${humanLine(line)}`) } : pino.destination({ fd: 2, sync: true });
  return pino({ level, base: { pid: process.pid } }, destination);
}
