/**
 * `auth:` naming a folder (`accounts/`) or a glob (`accounts/*.json`): one upstream per auth file, so a
 * pool of many accounts is one config entry. Each is named `<name>-<file stem>` and keeps every other
 * key of the entry. Files are listed on every build (sorted, so names and order are stable), which is
 * how a file added to the folder is picked up on reload.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UpstreamExpandError, type UpstreamInitContext } from '../../core/index.js';
import { expandHome } from './credentials.js';

/** What an upstream name may hold (the core's rule); a derived name must keep to it. */
const NAME = /^[A-Za-z0-9._-]+$/;

/** Is this `auth:` value a folder or a glob rather than one file? */
interface Listing {
  /** The folder to list, absolute. */
  dir: string;
  /** The file names it takes. */
  match: RegExp;
  /** A folder (every `*.json`), rather than a glob. */
  folder: boolean;
}

function listing(auth: string, configDir: string): Listing | undefined {
  if (dirname(auth).includes('*'))
    throw new UpstreamExpandError(
      `auth "${auth}": only the last part of the path may hold * (e.g. accounts/*.json)`,
      'auth',
    );
  if (basename(auth).includes('*'))
    return { dir: expandHome(dirname(auth), configDir), match: globToRegExp(basename(auth)), folder: false };
  const path = expandHome(auth, configDir);
  const folder = /[/\\]$/.test(auth) || isDirectory(path);
  return folder ? { dir: path, match: globToRegExp('*.json'), folder: true } : undefined;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // a missing file is reported by the credentials loader, with its hint
  }
}

/** `*` matches any run of characters except `/`; like a shell, it never matches a leading dot. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^(?!\\.)${body}$`);
}

/** The entry itself when `auth` is one file (or absent); one entry per matching file otherwise. */
export function expandAuthFolder(
  entry: Readonly<Record<string, unknown>>,
  context: UpstreamInitContext,
): Array<Record<string, unknown>> {
  const auth = entry.auth;
  if (typeof auth !== 'string' || auth.length === 0) return [{ ...entry }];
  const p = listing(auth, context.configDir);
  if (p === undefined) return [{ ...entry }];
  let dirents: Dirent[];
  try {
    dirents = readdirSync(p.dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new UpstreamExpandError(`auth "${auth}": the folder ${p.dir} cannot be read (${code})`, 'auth');
  }
  // Symlinked files count as files: an account may live elsewhere and be linked in.
  const files = dirents
    .filter(
      (d) => p.match.test(d.name) && (d.isFile() || (d.isSymbolicLink() && isFile(join(p.dir, d.name)))),
    )
    .map((d) => d.name)
    .sort();
  if (files.length === 0)
    throw new UpstreamExpandError(
      `auth "${auth}" matches no auth file in ${p.dir}${p.folder ? ' (a folder gives one account per *.json file)' : ''}: add one with \`tapgate login codex --out ${join(p.folder ? auth : dirname(auth), 'NAME.json')}\``,
      'auth',
    );
  const base = typeof entry.name === 'string' ? entry.name : '';
  return files.map((file) => {
    const name = `${base}-${file.replace(/\.json$/, '')}`;
    if (!NAME.test(name))
      throw new UpstreamExpandError(
        `auth file "${file}" in "${auth}" would give the upstream name "${name}": rename the file to letters, digits, ".", "_" and "-"`,
        'auth',
      );
    return { ...entry, name, auth: join(p.dir, file) };
  });
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
