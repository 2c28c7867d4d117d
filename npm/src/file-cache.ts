/**
 * A {@link ModelCache} in a folder, for Node (which has no Cache Storage). Writes go to a
 * temporary file renamed into place, so a crash never leaves a half-written entry under a
 * real name; entries are verified against their sha256 on every read anyway. Processes that
 * share the folder coordinate through {@link FileCache.lock} (proper-lockfile).
 * @module
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import type { ModelCache } from './cache.js';
import { BrasaError } from './errors.js';

/** `$XDG_CACHE_HOME/brasa/models`, else `~/.cache/brasa/models`. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'brasa', 'models');
}

/** How processes sharing a {@link FileCache} folder coordinate. */
export interface FileCacheOptions {
  /**
   * How long (ms) the lock of a process that died holding it (its holder renews it every
   * half of this) blocks the others before they break it. At least 2000; default 10 000.
   */
  staleLockMs?: number;
  /** How long (ms) a process's lease on the files its models use lasts unless renewed; default 60 000. */
  leaseMs?: number;
}

/** The lock's directory in the folder (no cache key starts with a dot). */
const LOCK_NAME = '.state.lock';

// This process's turns at each folder's lock: one waits on the lock directory, the rest here.
const turns = new Map<string, Promise<unknown>>();

/**
 * Model files as plain files in `dir`. Several processes may share one folder: the fetcher
 * changes its state under {@link FileCache.lock}, and a process never evicts files that
 * another one's running models use (see {@link ModelCache.lock}).
 */
export class FileCache implements ModelCache {
  readonly kind = 'file';
  readonly dir: string;
  readonly staleLockMs: number;
  readonly leaseMs: number;
  #ready: Promise<unknown> | null = null;

  constructor(dir: string = defaultCacheDir(), options: FileCacheOptions = {}) {
    this.dir = dir;
    this.staleLockMs = Math.max(options.staleLockMs ?? 10_000, 2000);
    this.leaseMs = options.leaseMs ?? 60_000;
  }

  /**
   * Run `task` holding the folder's lock (a directory created atomically, `.state.lock`,
   * through proper-lockfile), excluding every other process's and every other `FileCache`'s
   * `lock` on the same folder. A lock whose holder died is broken once it is `staleLockMs`
   * old; waiting gives up after three times that with `internal`.
   */
  lock<T>(task: () => Promise<T>): Promise<T> {
    const folder = resolve(this.dir);
    const run = (turns.get(folder) ?? Promise.resolve()).then(() => this.#locked(task));
    const turn = run.catch(() => undefined);
    turns.set(folder, turn);
    void turn.then(() => {
      if (turns.get(folder) === turn) turns.delete(folder);
    });
    return run;
  }

  async #locked<T>(task: () => Promise<T>): Promise<T> {
    // Every time (a syscall): a folder removed meanwhile would make the lock poll until it gives up.
    await mkdir(this.dir, { recursive: true });
    // Loaded on first use: Node only (the package's other entries never reach this module).
    const { lock } = await import('proper-lockfile');
    const stale = this.staleLockMs;
    let release: () => Promise<void>;
    try {
      release = await lock(this.dir, {
        lockfilePath: join(this.dir, LOCK_NAME),
        realpath: false,
        stale,
        // Short polls (the lock is held for one read and write of the state), about three
        // times `stale` in all: a dead holder's lock is broken after `stale`.
        retries: { retries: Math.ceil((3 * stale) / 50) + 10, factor: 1.5, minTimeout: 1, maxTimeout: 50, randomize: true },
        // This process stalled past `stale` and another one took the lock over: its write
        // still replaces the state whole; nothing to undo.
        onCompromised: () => undefined,
      });
    } catch (err) {
      throw new BrasaError('internal', `could not lock the cache folder ${this.dir} (${LOCK_NAME}): ${(err as Error).message}`, { cause: err });
    }
    try {
      return await task();
    } finally {
      await release().catch(() => undefined);
    }
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
