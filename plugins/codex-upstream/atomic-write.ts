/**
 * Crash-safe file replacement: write a temp file in the same directory (mode 0600), fsync it,
 * rename it over the target, then fsync the directory so the rename itself is durable. A crash at
 * any moment leaves either the old file or the new one, never a partial or empty one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export const CREDENTIAL_MODE = 0o600;

/** The temp file's name: hidden, next to the target, unique per write. */
export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tapgate-${process.pid}-${randomBytes(6).toString('hex')}.tmp`,
  );
}

export async function writeFileAtomic(
  path: string,
  content: string | Buffer,
  mode = CREDENTIAL_MODE,
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
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
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
