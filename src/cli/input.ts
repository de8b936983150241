// The `-f` inputs of a command, read as kubectl reads them: each `-f` names a file, a directory or
// `-` (standard input, once). A named file is read whatever its name; a directory gives its
// `.json`, `.yaml` and `.yml` files in lexical order, and with `-R` those of its subdirectories too,
// depth first as kubectl walks them. Symbolic links to files are read; links to directories are not
// followed (nor are they by kubectl).
import { readFileSync, readdirSync, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.ts';

/** One input: where it came from (a path, or `-`) and its text. */
export interface Source {
  readonly name: string;
  readonly text: string;
}

/** How a directory's files are chosen (kubectl's FileExtensions). */
const MANIFEST_EXTENSIONS = ['.json', '.yaml', '.yml'];

const describe = (path: string) => (path === '-' ? 'standard input' : path);

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES') return 'permission denied';
  return (error as Error).message;
}

function readText(path: string, readStdin: () => string): string {
  try {
    return path === '-' ? readStdin() : readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${describe(path)}: ${reason(error)}`);
  }
}

/** Whether a directory entry is a file, following a symbolic link to one. */
function isFile(dir: string, entry: Dirent): boolean {
  if (entry.isFile()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return statSync(join(dir, entry.name)).isFile();
  } catch {
    return false;
  }
}

/** The manifest files of a directory (and, recursively, of its subdirectories), in kubectl's order. */
function directoryFiles(dir: string, recursive: boolean): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    throw new UsageError(`cannot read directory ${dir}: ${reason(error)}`);
  }
  // filepath.Walk visits a directory's entries in lexical byte order, files and directories mixed.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return recursive ? directoryFiles(path, true) : [];
    return isFile(dir, entry) && MANIFEST_EXTENSIONS.some((ext) => entry.name.endsWith(ext)) ? [path] : [];
  });
}

/**
 * Reads every input the `-f` flags name, in their order, or throws a UsageError naming the one that
 * cannot be read: a path that does not exist, a directory without manifests, `-` given twice, a URL.
 */
export function readSources(paths: readonly string[], recursive: boolean, readStdin: () => string = () => readFileSync(0, 'utf8')): Source[] {
  if (paths.filter((p) => p === '-').length > 1) throw new UsageError('-f - (standard input) can be given once');
  const sources: Source[] = [];
  for (const path of paths) {
    if (/^https?:\/\//i.test(path)) {
      throw new UsageError(`-f ${path}: URLs are not fetched; download the manifest first (curl -sL URL | envoy-injector COMMAND -f -)`);
    }
    let directory = false;
    if (path !== '-') {
      try {
        directory = statSync(path).isDirectory();
      } catch (error) {
        throw new UsageError(`cannot read ${path}: ${reason(error)}`);
      }
    }
    if (!directory) {
      sources.push({ name: path, text: readText(path, readStdin) });
      continue;
    }
    const files = directoryFiles(path, recursive);
    if (files.length === 0) {
      throw new UsageError(`${path} holds no ${MANIFEST_EXTENSIONS.join(', ')} files${recursive ? '' : ' (add -R to read its subdirectories)'}`);
    }
    for (const file of files) sources.push({ name: file, text: readText(file, readStdin) });
  }
  return sources;
}
