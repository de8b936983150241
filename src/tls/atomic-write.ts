// Writing certificate files so that a failure (disk full, I/O error, a crash) never leaves a
// truncated or half-updated file in place: each file is written to a temporary file in the same
// directory, flushed to disk, and renamed over the old one only once every file of the set is
// written; a rename within a directory is atomic. Until then the old files are untouched.
import * as nodeFs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** The file-system calls the writer uses; tests pass one that fails where they want. */
export type WriteFs = Pick<
  typeof nodeFs,
  'openSync' | 'writeSync' | 'fsyncSync' | 'closeSync' | 'renameSync' | 'unlinkSync' | 'mkdirSync' | 'fchmodSync'
>;

/** One file to write: where, what, and its permission bits (0o600 for private keys). */
export interface FileToWrite {
  readonly path: string;
  readonly data: string;
  readonly mode: number;
}

/**
 * Writes every file of `files` or none: all are written to temporary files beside their targets
 * and synced first; only then are they renamed over the targets, in the order given, and the
 * directories synced. A failure before the renames removes the temporary files and leaves every
 * target as it was. Throws the underlying error.
 */
export function writeFilesAtomically(files: readonly FileToWrite[], fs: WriteFs = nodeFs): void {
  const written: { temp: string; path: string }[] = [];
  try {
    for (const file of files) {
      fs.mkdirSync(dirname(file.path), { recursive: true });
      // Exclusive create: never follows or reuses a file someone else put there.
      const temp = join(dirname(file.path), `.${basename(file.path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      const fd = fs.openSync(temp, 'wx', file.mode);
      written.push({ temp, path: file.path });
      try {
        // The exact mode whatever the umask: a key must not come out group-readable, nor a
        // certificate unreadable.
        fs.fchmodSync(fd, file.mode);
        const bytes = Buffer.from(file.data);
        for (let offset = 0; offset < bytes.length; ) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  } catch (error) {
    for (const { temp } of written) {
      try {
        fs.unlinkSync(temp);
      } catch {
        // Already gone, or the disk refuses even that: the target is intact either way.
      }
    }
    throw error;
  }
  for (const { temp, path } of written) fs.renameSync(temp, path);
  // The renames are durable once their directory is synced.
  for (const dir of new Set(written.map(({ path }) => dirname(path)))) {
    try {
      const fd = fs.openSync(dir, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      // Some file systems cannot sync a directory; the files themselves are synced.
    }
  }
}
