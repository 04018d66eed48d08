/**
 * `--watch`: reloads when the config file changes. The file's directory is watched, not the file:
 * editors and deploy tools replace a file by renaming another onto it (and Kubernetes swaps a
 * symlinked directory), which ends a watch on the file itself. Any event in the directory is
 * debounced, then the file's bytes are compared with the last ones seen, so a burst of writes is
 * one reload and a touch of another file none.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

/** An editor's save is several events within a few ms; a tool writing in steps, a little longer. */
export const WATCH_DEBOUNCE_MS = 200;

export function watchConfig(
  file: string,
  onChange: () => void,
  onError: (err: Error) => void,
  debounceMs = WATCH_DEBOUNCE_MS,
): () => void {
  let seen = digestOf(file);
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    timer = undefined;
    const now = digestOf(file);
    // Missing for a moment (between an unlink and a rename): wait for the next event.
    if (now === undefined || now === seen) return;
    seen = now;
    onChange();
  };
  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
  });
  watcher.on('error', onError);
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    watcher.close();
  };
}

function digestOf(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}
