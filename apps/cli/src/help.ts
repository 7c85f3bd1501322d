/** Help texts, kept apart from the commands so that --help loads no TensorFlow.js. */

export const HELP = `Usage: ringtrain <command> [options]

Trains and fine-tunes TensorFlow.js MLPs with synchronous data parallelism.

Commands:
  train   train a job in this process (default job: the built-in Iris example)
  eval    evaluate a saved model on a data source

Global options:
  --log-level LEVEL  trace, debug, info, warn, error, fatal, silent (default: info; logs go to stderr)
  -h, --help         show help (also: ringtrain <command> --help)

Run 'ringtrain <command> --help' for a command's options.
`;

export const TRAIN_HELP = `Usage: ringtrain train [--job FILE.yaml] [--out DIR] [--data SOURCE] [--label NAME] [--resume] [--backend NAME]

Trains a model in this process.

  --job FILE     the job spec (YAML); default: the built-in Iris example
                 (examples/iris.yaml)
  --out DIR      where to write model/, metrics.json and job.yaml;
                 default: runs/<job name>
  --data SOURCE  replaces data.source: builtin:iris, csv:PATH, idx:DIR, synthetic:...
                 (the spec's data.label is dropped: the label is then the last column)
  --label NAME   replaces data.label: the label column of a CSV source
  --resume       continue from the newest valid checkpoint in --out (without --job,
                 with the checkpoint's own spec)
  --backend NAME replaces training.backend: auto, tensorflow, wasm, cpu
  --json         print the final summary as JSON on stdout
`;

export const EVAL_HELP = `Usage: ringtrain eval --model DIR [--data SOURCE] [--label NAME] [--backend NAME] [--json]

Evaluates a saved model (the model/ folder of a run, or its model.json): loss, accuracy
and a confusion matrix, on data normalized with the model's own statistics.

  --model DIR    the model to load
  --data SOURCE  what to evaluate on. Default: the run's own held-out test rows (the
                 source, classes and split seed in the job.yaml beside model/).
                 A source with its own test split (idx:) uses that split; others all rows.
  --label NAME   the label column of a CSV source (default: the one used in training)
  --backend NAME auto, tensorflow, wasm, cpu (default auto)
  --json         print the result as JSON
`;
