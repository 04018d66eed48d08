/**
 * Opens a URL in the user's browser, best effort: only where a browser can show (macOS, Windows, or a
 * Linux/BSD session with a display). Failure is silent: the URL is printed anyway.
 */
import { spawn } from 'node:child_process';

/** The command that opens a URL here, or undefined when no browser can show (a headless server). */
export function browserCommand(
  platform: NodeJS.Platform = process.platform,
  env: NodeJS.ProcessEnv = process.env,
): [string, string[]] | undefined {
  if (platform === 'darwin') return ['open', []];
  if (platform === 'win32') return ['rundll32', ['url.dll,FileProtocolHandler']];
  if (env.DISPLAY || env.WAYLAND_DISPLAY) return ['xdg-open', []];
  return undefined;
}

/** True when a command was started. */
export function openBrowser(url: string): boolean {
  const cmd = browserCommand();
  if (cmd === undefined) return false;
  try {
    const child = spawn(cmd[0], [...cmd[1], url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}
