/**
 * Entry point of the `ringtrain` command: parses the subcommand, creates the
 * process's logger, runs the command, and turns errors into exit codes
 * (0 ok, 2 a coded error the user can fix, 1 a bug; the coordinator and the worker say
 * more: EXIT of @ringtrain/protocol).
 */
import { createLogger } from './logger.js';
import { EXIT_USAGE, reportError, UsageError } from './errors.js';
import { COORDINATOR_HELP, EVAL_HELP, HELP, LOCAL_HELP, PLAN_HELP, TRAIN_HELP, WORKER_HELP } from './help.js';

const COMMANDS: Record<string, string> = { train: TRAIN_HELP, eval: EVAL_HELP, local: LOCAL_HELP, coordinator: COORDINATOR_HELP, worker: WORKER_HELP, plan: PLAN_HELP };

/** Pulls the global --log-level out of argv. */
function splitGlobal(argv: string[]): { level: string; rest: string[] } {
  const rest: string[] = [];
  let level = 'info';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--log-level') level = argv[++i] ?? level;
    else if (a.startsWith('--log-level=')) level = a.slice('--log-level='.length);
    else rest.push(a);
  }
  return { level, rest };
}

export async function main(argv: string[]): Promise<number> {
  const { level, rest } = splitGlobal(argv);
  const [command, ...args] = rest;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? EXIT_USAGE : 0;
  }
  const help = COMMANDS[command];
  if (help === undefined) {
    process.stderr.write(`ringtrain: error CLI_USAGE: unknown command "${command}"\n\n${HELP}`);
    return EXIT_USAGE;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(help);
    return 0;
  }
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  if (!levels.includes(level)) return reportError(new UsageError(`--log-level must be one of ${levels.join(', ')}, got "${level}"`));
  const log = createLogger(level);
  // First Ctrl-C (or SIGTERM): finish the current step, save a checkpoint, write what we
  // have, exit 0 (the coordinator and a worker exit 3: their job is not over). A second
  // one a second or more later aborts. (One Ctrl-C can arrive twice: the terminal signals
  // the whole process group, and npx forwards it again.)
  let stoppingSince: number | null = null;
  let stopAction: (() => void) | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stoppingSince !== null) {
      if (Date.now() - stoppingSince >= 1000) process.exit(130);
      return;
    }
    stoppingSince = Date.now();
    log.warn({ signal }, 'stopping after the current step (again to abort)');
    stopAction?.();
  };
  const onStop = (stop: () => void) => {
    stopAction = stop;
    if (stoppingSince !== null) stop();
  };
  // Only commands with a step to finish; eval stops on the first signal as usual.
  if (command !== 'eval' && command !== 'plan') {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    // Imported here, not at the top: loading TensorFlow.js takes a while, and help needs none of it.
    switch (command) {
      case 'train':
        await (await import('./commands/train.js')).trainCommand(args, log, () => stoppingSince !== null);
        return 0;
      case 'local':
        await (await import('./commands/local.js')).localCommand(args, log, onStop);
        return 0;
      case 'coordinator':
        return await (await import('./commands/coordinator.js')).coordinatorCommand(args, log, onStop);
      case 'plan':
        await (await import('./commands/plan.js')).planCommand(args);
        return 0;
      case 'worker':
        return await (await import('./commands/worker.js')).workerCommand(args, log, onStop);
      default:
        await (await import('./commands/eval.js')).evalCommand(args, log);
        return 0;
    }
  } catch (err) {
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      return reportError(new UsageError(`${err.message}\n\n${help}`));
    }
    return reportError(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
