/** Help texts, kept apart from the commands so that --help loads no TensorFlow.js. */

export const HELP = `Usage: ringtrain <command> [options]

Trains and fine-tunes TensorFlow.js MLPs with synchronous data parallelism.

Commands:
  local        train a job on a coordinator and N worker processes on this machine
               (default job: the built-in Iris example)
  train        train a job in this process
  eval         evaluate a saved model on a data source
  coordinator  serve one job to workers on other machines (or containers)
  worker       join a coordinator and train
  plan         a job's memory plan for one worker, and the Kubernetes memory that fits it

Global options:
  --log-level LEVEL  trace, debug, info, warn, error, fatal, silent (default: info; logs go to stderr)
  -h, --help         show help (also: ringtrain <command> --help)

Run 'ringtrain <command> --help' for a command's options.
`;

export const TRAIN_HELP = `Usage: ringtrain train [--job FILE.yaml] [--out DIR] [--data SOURCE] [--label NAME] [--no-header] [--resume] [--backend NAME]

Trains a model in this process.

  --job FILE     the job spec (YAML); default: the built-in Iris example
                 (examples/iris.yaml)
  --out DIR      where to write model/, metrics.json, job.yaml and report.html
                 (the run's charts, one file to open in a browser); default: runs/<job name>
  --data SOURCE  replaces data.source: builtin:iris, csv:PATH, idx:DIR, synthetic:...
                 (the spec's data.label and data.header are dropped: the label is
                 then the last column, and the first row the header)
  --label NAME   replaces data.label: the label column of a CSV source
  --no-header    data.header: false: the CSV file has no header; its columns are
                 c0, c1, ... (the label is the last unless --label names one, e.g. c4)
  --resume       continue from the newest valid checkpoint in --out (without --job,
                 with the checkpoint's own spec)
  --backend NAME replaces training.backend: auto, tensorflow, webgpu, wasm, cpu
  --json         print the final summary as JSON on stdout

Ctrl-C or SIGTERM stops between steps: a checkpoint is saved, the final evaluation
skipped, and the process exits 0; --resume continues bit for bit.
`;

export const EVAL_HELP = `Usage: ringtrain eval --model DIR [--data SOURCE] [--label NAME] [--no-header] [--backend NAME] [--json]

Evaluates a saved model (the model/ folder of a run, or its model.json): loss, accuracy
and a confusion matrix, on data normalized with the model's own statistics.

  --model DIR    the model to load
  --data SOURCE  what to evaluate on. Default: the run's own held-out test rows (the
                 source, classes and split seed in the job.yaml beside model/).
                 A source with its own test split (idx:) uses that split; others all rows.
  --label NAME   the label column of a CSV source (default: the one used in training)
  --no-header    the CSV file given with --data has no header (columns c0, c1, ...)
  --backend NAME auto, tensorflow, webgpu, wasm, cpu (default auto)
  --json         print the result as JSON
`;

export const LOCAL_HELP = `Usage: ringtrain local [--job FILE.yaml] [--workers N] [--max-restarts N] [--out DIR] [--port P] [--resume] [--backend NAME] [--memory-limit BYTES] [--json] [--tls-cert F --tls-key F [--tls-ca F] [--tls-peer-name N]]

Runs the cluster on this machine: a coordinator in this process and N worker processes
(ringtrain worker) over loopback. The same outputs as ringtrain train.

A worker process that exits while the job runs (a crash, kill -9) is started again under
its id (local-0, local-1, ...) after 1 s, doubling with each restart in a row up to 30 s,
and the job regroups to N workers. When a worker's restarts are spent, or it exits with
code 2 (a coded error it printed, which a restart would repeat), the job stops at a step
boundary with a checkpoint (--resume continues) and local exits 2 (CLI_WORKER_RESTARTS,
CLI_WORKERS_EXITED).

  --job FILE        the job spec (YAML); default: the built-in Iris example
  --workers N       worker processes (default 2); the first generation waits for all N
  --max-restarts N  restarts in a row of one worker before giving up (default 3; 0: none).
                    A worker that ran 10 minutes before exiting starts its count afresh
  --out DIR         output directory; default: runs/<job name>
  --port P          the coordinator's HTTP port (default: any free one; the URL is printed)
  --resume          continue from the newest valid checkpoint in --out
  --backend NAME    the workers' backend: auto, tensorflow, webgpu, wasm, cpu
  --memory-limit B  the memory each worker's job may plan to use (512Mi, 4Gi, or none;
                    ringtrain worker --help); default this machine's, for each worker
  --json            print the final summary as JSON on stdout
  --tls-cert F      TLS on loopback too: the coordinator serves https with this
  --tls-key F       certificate and key, the workers their ring endpoints; its names
                    must include 127.0.0.1 (env RINGTRAIN_TLS_CERT, RINGTRAIN_TLS_KEY)
  --tls-ca F        the CA the workers verify it against (env RINGTRAIN_TLS_CA;
                    default the system's CAs)
  --tls-peer-name N the name the ring endpoints' certificates are checked for instead
                    of 127.0.0.1 (env RINGTRAIN_TLS_PEER_NAME)
`;

export const COORDINATOR_HELP = `Usage: ringtrain coordinator --job FILE.yaml --out DIR [--port P] [--host H] [--token-file F] [--tls-cert F --tls-key F [--tls-ca F] [--tls-peer-name N]]

Owns one job: its data, membership of workers in generations, checkpoints, outputs, the
HTTP API (/api/status, /api/metrics, /metrics, /healthz, /readyz, /api/stream, and
POST /api/pause|resume|stop with the token). Continues from the newest checkpoint in
--out if there is one. SIGTERM checkpoints and exits; the workers wait for its return.

Exit status (a Kubernetes Job acts on it, deploy/k8s): 0 the model is written; 2 a
coded error (a bad spec, GENERATION_LIVELOCK); 3 stopped by SIGTERM before the end, a
checkpoint saved (run it again to continue); 4 stopped for good by POST /api/stop, a
checkpoint but no model; 1 a bug.

  --job FILE        the job spec (env RINGTRAIN_JOB)
  --out DIR         output and checkpoint directory (env RINGTRAIN_OUT)
  --port P          HTTP port (env RINGTRAIN_PORT; default 7070)
  --host H          interface to bind (env RINGTRAIN_HOST; default 0.0.0.0)
  --token-file F    the job token (env RINGTRAIN_TOKEN_FILE, or RINGTRAIN_TOKEN itself)
  --backend NAME    auto, tensorflow, webgpu, wasm, cpu
  --tls-cert F      serve https and wss only (the dashboard, the API, /worker) with this
  --tls-key F       PEM certificate chain and key (env RINGTRAIN_TLS_CERT,
                    RINGTRAIN_TLS_KEY); plain http on the port gets 400 TLS_REQUIRED.
                    Its workers then need --tls-cert and --tls-key too
  --tls-ca F        the CA, and the name, the workers' ring endpoints are verified
  --tls-peer-name N against when the coordinator checks one a peer could not reach:
                    the workers' own (env RINGTRAIN_TLS_CA, RINGTRAIN_TLS_PEER_NAME)
`;

export const PLAN_HELP = `Usage: ringtrain plan [--job FILE.yaml] [--backend NAME] [--format text|json|kustomize]

What one worker of the job will hold (the memory plan a worker checks when the job
arrives, refusing it with MEMORY_PLAN_EXCEEDED when it is over the container's limit),
item by item, and the memory a worker container needs: the plan plus 25%, in 64 Mi
steps, as its request, and as its limit on wasm and cpu (1 Gi more on a native backend:
auto, tensorflow, webgpu). Loads the job's data and init model as the coordinator would
(run it where those paths resolve); trains nothing.

  --job FILE     the job spec (YAML); default: the built-in Iris example
  --backend NAME the workers' backend (default the spec's; auto plans for wasm)
  --format F     text (default); json; kustomize: a patch of deploy/k8s's worker Job
                 with that memory, to add to an overlay's patches
`;

export const WORKER_HELP = `Usage: ringtrain worker --coordinator URL [--advertise-host H] [--peer-port P] [--token-file F] [--memory-limit BYTES] [--coordinator-timeout T] [--tls-cert F --tls-key F [--tls-ca F] [--tls-peer-name N]]

Joins a coordinator, trains in the generations it is given, reconnects with backoff if
the coordinator goes away, and exits when the job completes. SIGTERM finishes the step
and leaves.

Exit status (a Kubernetes Job acts on it, deploy/k8s): 0 the job is over; 2 a coded
error a restart would repeat; 3 left on SIGTERM before the end (the job goes on);
5 no coordinator for --coordinator-timeout; 6 excluded by the coordinator
(PEER_UNREACHABLE, SOURCE_INVALID); 1 a bug.

  --coordinator URL     http://host:port, or https://host:port for a TLS coordinator
                        (env RINGTRAIN_COORDINATOR)
  --token-file F        the job token (env RINGTRAIN_TOKEN_FILE, or RINGTRAIN_TOKEN)
  --advertise-host H    the address peers dial (env RINGTRAIN_ADVERTISE_HOST; default hostname)
  --bind-host H         interface of the ring endpoint (env RINGTRAIN_BIND_HOST; default 0.0.0.0)
  --peer-port P         ring endpoint port (env RINGTRAIN_PEER_PORT; default any)
  --backend NAME        overrides the job's backend (env RINGTRAIN_BACKEND)
  --id ID               worker id, stable across reconnects (env RINGTRAIN_WORKER_ID)
  --memory-limit BYTES  the memory a job's plan may use (512Mi, 4Gi, 8G, or bytes; env
                        RINGTRAIN_MEMORY_LIMIT); default the cgroup's limit, else the
                        machine's memory; none: no check but the wasm heap's 4 GiB.
                        A job over it ends the worker with MEMORY_PLAN_EXCEEDED (exit 2)
  --coordinator-timeout T  give up with exit 5 once no coordinator has answered for T
                        (90s, 15m, 1h; env RINGTRAIN_COORDINATOR_TIMEOUT; default none:
                        retry for ever). In a Kubernetes Job, a worker started just as
                        its coordinator finished would otherwise hold its GPU for ever

TLS (an https:// coordinator; required then, refused with http://):
  --tls-cert F          PEM certificate chain and key the ring endpoint serves
  --tls-key F           (env RINGTRAIN_TLS_CERT, RINGTRAIN_TLS_KEY)
  --tls-ca F            the CA the coordinator's and peers' certificates must chain to
                        (env RINGTRAIN_TLS_CA; default the system's CAs)
  --tls-peer-name N     the name peers' certificates must carry, whatever address is
                        dialed (env RINGTRAIN_TLS_PEER_NAME; default the address dialed).
                        For pod IPs: one certificate naming N, signed by the job's own CA
`;
