/**
 * Signals a supervisor, a terminal or a user may send that must not cut open streams. Node's
 * defaults would: SIGHUP and SIGUSR2 end the process at once (exit 129/140), and SIGUSR1 opens the
 * inspector on 127.0.0.1:9229, a debugger port on a process that holds OAuth tokens. SIGHUP reloads
 * the config (once the gateway runs); the others are logged and otherwise ignored. A listener on
 * SIGUSR1 is what keeps Node from starting the inspector.
 */

export const IGNORED_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;

const WHY: Record<(typeof IGNORED_SIGNALS)[number], string> = {
  SIGHUP: 'ignored: the gateway is not running yet, so there is no config to reload',
  SIGUSR1: 'ignored: the inspector stays closed (it would expose the process, tokens included)',
  SIGUSR2: 'ignored',
};

export type SignalLog = (signal: string, message: string) => void;

/**
 * Installs the handlers (replacing any earlier ones); `log` is read at each signal, so it can be
 * swapped, and so is `reload`: SIGHUP calls it once it is set.
 */
export function ignoreSignals(
  log: () => SignalLog,
  reload: () => ((signal: string) => void) | undefined = () => undefined,
): void {
  for (const signal of IGNORED_SIGNALS) {
    process.removeAllListeners(signal);
    process.on(signal, () => {
      const run = signal === 'SIGHUP' ? reload() : undefined;
      if (run !== undefined) run(signal);
      else log()(signal, WHY[signal]);
    });
  }
}
