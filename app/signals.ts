/**
 * Signals a supervisor, a terminal or a user may send that must not cut open streams. Node's
 * defaults would: SIGHUP and SIGUSR2 end the process at once (exit 129/140), and SIGUSR1 opens the
 * inspector on 127.0.0.1:9229, a debugger port on a process that holds OAuth tokens. Each is
 * logged and otherwise ignored (SIGHUP is the reload signal of a later release). A listener on
 * SIGUSR1 is what keeps Node from starting the inspector.
 */

export const IGNORED_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;

const WHY: Record<(typeof IGNORED_SIGNALS)[number], string> = {
  SIGHUP: 'ignored: config reload is not supported yet; restart to apply a new config',
  SIGUSR1: 'ignored: the inspector stays closed (it would expose the process, tokens included)',
  SIGUSR2: 'ignored',
};

export type SignalLog = (signal: string, message: string) => void;

/** Installs the handlers (replacing any earlier ones); `log` is read at each signal, so it can be swapped. */
export function ignoreSignals(log: () => SignalLog): void {
  for (const signal of IGNORED_SIGNALS) {
    process.removeAllListeners(signal);
    process.on(signal, () => log()(signal, WHY[signal]));
  }
}
