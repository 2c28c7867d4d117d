/**
 * A {@link ModelCache} in a folder, for Node (which has no Cache Storage). Writes go to a
 * temporary file renamed into place, so a crash never leaves a half-written entry under a
 * real name; entries are verified against their sha256 on every read anyway.
 * @module
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

import type { ModelCache } from './cache.js';
import { BrasaError } from './errors.js';

/** `$XDG_CACHE_HOME/brasa/models`, else `~/.cache/brasa/models`. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'brasa', 'models');
}

/** Model files as plain files in `dir`. */
export class FileCache implements ModelCache {
  readonly kind = 'file';
  readonly dir: string;
  #ready: Promise<unknown> | null = null;

  constructor(dir: string = defaultCacheDir()) {
    this.dir = dir;
  }

  #path(key: string): string {
    // Keys are brasa's own (`sha256-<hex>`, `state.json`); refuse anything that could leave the folder.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(key)) throw new BrasaError('internal', `invalid cache key ${JSON.stringify(key)}`);
    return join(this.dir, key);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.#path(key)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    this.#ready ??= mkdir(this.dir, { recursive: true });
    await this.#ready;
    const tmp = `${this.#path(key)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, this.#path(key));
  }

  async delete(key: string): Promise<void> {
    await rm(this.#path(key), { force: true });
  }
}
