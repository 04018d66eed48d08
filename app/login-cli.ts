/**
 * `tapgate login codex --out accounts/NAME.json`: signs a ChatGPT account in with Codex CLI's OAuth
 * flow (browser, or `--device` for a headless server) and writes its auth.json, ready for a codex
 * upstream's `auth:` (a file, or the folder it is in).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatDuration, parseDuration } from '../core/config/units.js';
import {
  codexLogin,
  DEFAULT_CALLBACK_PORT,
  DEFAULT_ISSUER,
  LoginError,
} from '../plugins/codex-upstream/login/login.js';

export const LOGIN_HELP = `Usage: tapgate login codex --out FILE [--device] [--no-browser] [--port N]
                          [--timeout 10m] [--force]

Signs a ChatGPT account in with the same OAuth flow as Codex CLI and writes its login
as a Codex CLI auth.json (mode 0600). Point a codex upstream's auth: at the file, or at
its folder (one upstream per file).

Options:
  -o, --out FILE      the auth.json to write, e.g. accounts/alice.json (its folder is created)
  --device            device-code sign-in: enter a code at a URL from any browser (for a
                      headless server)
  --no-browser        print the sign-in URL without trying to open a browser
  --port N            the callback port on 127.0.0.1 (default: ${DEFAULT_CALLBACK_PORT}, the one OpenAI
                      accepts for Codex CLI's client)
  --timeout DUR       give up after this long, writing nothing (default: 10m; 15m with --device)
  --force             replace FILE if it exists
  --issuer URL        the OAuth issuer (default: ${DEFAULT_ISSUER}); for tests and enterprise
                      setups only
  -h, --help          show this help`;

const BROWSER_TIMEOUT = '10m';
/** Codex CLI's own cap on a device-code login. */
const DEVICE_TIMEOUT = '15m';

class LoginArgError extends Error {}

export async function runLogin(argv: string[]): Promise<number> {
  if (argv[0] === undefined || argv[0] === '-h' || argv[0] === '--help') {
    process.stdout.write(LOGIN_HELP + '\n');
    return argv[0] === undefined ? 2 : 0;
  }
  if (argv[0] !== 'codex') {
    process.stderr.write(`tapgate login: unknown provider "${argv[0]}" (known: codex)\n\n${LOGIN_HELP}\n`);
    return 2;
  }
  let args: ReturnType<typeof parseLoginArgs>;
  try {
    args = parseLoginArgs(argv.slice(1));
  } catch (err) {
    if (!(err instanceof LoginArgError)) throw err;
    process.stderr.write(`tapgate login codex: ${err.message}\n\n${LOGIN_HELP}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(LOGIN_HELP + '\n');
    return 0;
  }
  try {
    const r = await codexLogin({ ...args, say: (line) => process.stdout.write(line + '\n') });
    const who = [r.email, r.plan === undefined ? undefined : `plan ${r.plan}`].filter(Boolean).join(', ');
    process.stdout.write(
      `Signed in: ChatGPT account ${r.accountId}${who ? ` (${who})` : ''}\nSaved to ${args.out}\n`,
    );
    return 0;
  } catch (err) {
    const message = err instanceof LoginError ? err.message : `failed: ${(err as Error).message}`;
    process.stderr.write(`tapgate login codex: ${message}\n`);
    return 1;
  }
}

export function parseLoginArgs(argv: string[]) {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        out: { type: 'string', short: 'o' },
        device: { type: 'boolean' },
        'no-browser': { type: 'boolean' },
        port: { type: 'string' },
        timeout: { type: 'string' },
        force: { type: 'boolean' },
        issuer: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new LoginArgError((err as Error).message);
  }
  if (v.help) return 'help' as const;
  if (v.out === undefined || v.out === '')
    throw new LoginArgError('--out FILE is required (e.g. accounts/alice.json)');
  if (!v.out.endsWith('.json'))
    throw new LoginArgError(
      `--out must name a .json file (a folder in auth: takes *.json files), got "${v.out}"`,
    );
  let port = DEFAULT_CALLBACK_PORT;
  if (v.port !== undefined) {
    if (v.device) throw new LoginArgError('--port is for the browser sign-in; --device needs no port');
    port = Number(v.port);
    if (!/^\d+$/.test(v.port) || port > 65535)
      throw new LoginArgError(`--port must be a whole number from 0 to 65535, got "${v.port}"`);
  }
  const timeoutText = v.timeout ?? (v.device ? DEVICE_TIMEOUT : BROWSER_TIMEOUT);
  const timeoutMs = parseDuration(timeoutText);
  if (timeoutMs === undefined || timeoutMs <= 0 || timeoutMs > 24 * 3_600_000)
    throw new LoginArgError(
      `--timeout takes a duration such as 10m or 90s (at most 24h), got "${timeoutText}"`,
    );
  return {
    out: resolve(v.out),
    device: v.device === true,
    issuer: issuer(v.issuer ?? DEFAULT_ISSUER),
    port,
    timeoutMs,
    timeoutText: /^\d+$/.test(timeoutText) ? formatDuration(timeoutMs) : timeoutText,
    force: v.force === true,
    openBrowser: v['no-browser'] !== true,
  };
}

/** https anywhere; plain http only on a loopback host (a test's issuer): tokens cross this link. */
function issuer(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LoginArgError(`--issuer must be a URL, got "${text}"`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback))
    throw new LoginArgError(`--issuer must be https (http only on a loopback host), got "${text}"`);
  if (url.search !== '' || url.hash !== '') throw new LoginArgError(`--issuer takes no query or fragment`);
  return url.toString().replace(/\/+$/, '');
}
