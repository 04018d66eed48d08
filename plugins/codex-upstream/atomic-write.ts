/**
 * Crash-safe file replacement: write a temp file in the same directory (mode 0600), fsync it,
 * rename it over the target, then fsync the directory so the rename itself is durable. A crash at
 * any moment leaves either the old file or the new one, never a partial or empty one.
 */
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export const CREDENTIAL_MODE = 0o600;

/** The temp file's name: hidden, next to the target, unique per write. */
export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tapgate-${process.pid}-${randomBytes(6).toString('hex')}.tmp`,
  );
}

/** Thrown (code EEXIST) by an exclusive write when the target already exists. */
export class TargetExistsError extends Error {
  override name = 'TargetExistsError';
  readonly code = 'EEXIST';
}

/**
 * `exclusive`: never replace an existing file. The temp file is then hard-linked to the target,
 * which fails if the target exists (no window between a check and the rename).
 */
export async function writeFileAtomic(
  path: string,
  content: string | Buffer,
  mode = CREDENTIAL_MODE,
  options: { exclusive?: boolean } = {},
): Promise<void> {
  const tmp = tempPathFor(path);
  // `wx`: never follow or reuse an existing file; the mode applies from the first byte.
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.chmod(mode); // the umask may have narrowed it
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.exclusive) await placeExclusive(tmp, path);
    else await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}

async function placeExclusive(tmp: string, path: string): Promise<void> {
  try {
    await link(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new TargetExistsError(`${path} already exists`);
    // A file system without hard links: an exclusive create of the target is the next best guard.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    const fh = await open(path, 'wx', CREDENTIAL_MODE).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'EEXIST' ? new TargetExistsError(`${path} already exists`) : e;
    });
    await fh.close();
    await rename(tmp, path);
    return;
  }
  await unlink(tmp);
}

async function syncDirectory(dir: string): Promise<void> {
  let dh;
  try {
    dh = await open(dir, 'r');
    await dh.sync();
  } catch (err) {
    // Some platforms and file systems cannot fsync a directory; the rename is still atomic there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
  } finally {
    await dh?.close();
  }
}
