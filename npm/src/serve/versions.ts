/**
 * Several versions of one model side by side (Triton's version policies): which versions a
 * served model serves, which one a request without a version reaches, and which loaded
 * version to unload (least recently used, idle) when memory holds fewer than the policy names.
 * @module
 */
import { BrasaError } from '../errors.js';
import type { VersionPolicy } from '../glue.js';
import type { ModelEndpoint } from './endpoint.js';

/** What a served model asks for: its channel's version (the default), a pinned list, or the newest N. */
export type Policy = { kind: 'channel' } | { kind: 'specific'; versions: string[] } | { kind: 'latest'; count: number };

// SemVer 2.0.0 (the registry's versions), build metadata allowed.
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/** The policy of served model `name` from its `versions`/`latest`/`spec` options; throws `invalid_spec`. */
export function policyOf(name: string, options: { versions?: unknown; latest?: unknown; spec?: unknown }): Policy {
  const { versions, latest, spec } = options;
  if (versions === undefined && latest === undefined) return { kind: 'channel' };
  const fail = (why: string) => new BrasaError('invalid_spec', `served model ${name}: ${why}`);
  if (versions !== undefined && latest !== undefined) throw fail('give either `versions` (a pinned list) or `latest` (the newest N), not both');
  if (spec !== undefined) throw fail('`spec` names one version or channel; with `versions` or `latest` leave it out');
  if (latest !== undefined) {
    if (typeof latest !== 'number' || !Number.isInteger(latest) || latest < 1 || latest > 64) throw fail(`\`latest\` must be a whole number from 1 to 64; got ${JSON.stringify(latest)}`);
    return { kind: 'latest', count: latest };
  }
  if (!Array.isArray(versions) || versions.length === 0) throw fail('`versions` must be a non-empty list of versions (`[\'1.0.0\', \'1.1.0\']`)');
  for (const v of versions) {
    if (typeof v !== 'string' || !SEMVER.test(v)) throw fail(`\`versions\` holds ${JSON.stringify(v)}, which is not a version (MAJOR.MINOR.PATCH)`);
  }
  if (new Set(versions).size !== versions.length) throw fail(`\`versions\` lists a version twice: ${versions.join(', ')}`);
  return { kind: 'specific', versions: [...(versions as string[])].sort(compareVersions) };
}

/** SemVer precedence (build metadata ignored): negative when `a` is older than `b`. */
export function compareVersions(a: string, b: string): number {
  const [ma, mb] = [SEMVER.exec(a), SEMVER.exec(b)];
  if (!ma || !mb) return a < b ? -1 : a > b ? 1 : 0;
  for (let i = 1; i <= 3; i++) {
    const d = Number(ma[i]) - Number(mb[i]);
    if (d !== 0) return d;
  }
  const [pa, pb] = [ma[4], mb[4]];
  // A pre-release comes before its release.
  if (pa === undefined || pb === undefined) return pa === pb ? 0 : pa === undefined ? 1 : -1;
  const [xa, xb] = [pa.split('.'), pb.split('.')];
  for (let i = 0; i < Math.min(xa.length, xb.length); i++) {
    const [na, nb] = [/^\d+$/.test(xa[i]), /^\d+$/.test(xb[i])];
    if (na && nb && Number(xa[i]) !== Number(xb[i])) return Number(xa[i]) - Number(xb[i]);
    if (na !== nb) return na ? -1 : 1;
    if (xa[i] !== xb[i]) return xa[i] < xb[i] ? -1 : 1;
  }
  return xa.length - xb.length;
}

/**
 * The versions of `model` its registry's manifest lists, oldest first. Read with the
 * platform's `fetch` (the endpoint's runtimes have no HTTP cache to get past); a registry that
 * cannot answer is `network`, a body without `versions` `invalid_manifest`.
 */
export async function publishedVersions(registry: string | URL, model: string, timeoutMs = 30_000): Promise<string[]> {
  let base: URL;
  try {
    base = new URL(String(registry));
  } catch (err) {
    throw new BrasaError('network', `registry ${String(registry)} is not a valid URL`, { cause: err });
  }
  if (!base.pathname.endsWith('/')) base = new URL(`${base.pathname}/${base.search}`, base);
  const url = new URL(`${encodeURIComponent(model)}/manifest.json`, base);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new BrasaError('network', `could not fetch ${url.href} to list ${model}'s versions: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new BrasaError('network', `${url.href} answered ${response.status} when listing ${model}'s versions`);
  }
  let versions: unknown;
  try {
    versions = ((await response.json()) as { versions?: unknown }).versions;
  } catch (err) {
    throw new BrasaError('invalid_manifest', `${url.href} is not JSON`, { cause: err });
  }
  if (typeof versions !== 'object' || versions === null || Array.isArray(versions)) throw new BrasaError('invalid_manifest', `${url.href} has no \`versions\` object`);
  return Object.keys(versions)
    .filter((v) => SEMVER.test(v))
    .sort(compareVersions);
}

/** The versions one served model serves under a pinned-list or latest-N policy. */
export class VersionGroup {
  readonly name: string;
  readonly policy: Exclude<Policy, { kind: 'channel' }>;
  /** Its endpoints by version, oldest first (empty until a latest-N list is read). */
  readonly versions = new Map<string, ModelEndpoint>();
  /** Most versions loaded at once (from the memory plan of the first one loaded; unbounded without one). */
  capacity = Infinity;
  /** Why, when `capacity` is finite. */
  capacityReason: string | null = null;
  /** The latest-N list being read, and why it last could not be (with when). */
  resolving: Promise<void> | null = null;
  error: BrasaError | null = null;
  failedAt = 0;
  /** Bytes of each version's weight files (what a loaded version holds). */
  readonly weightBytes = new Map<string, Map<string, number>>();
  readonly #lastUsed = new Map<ModelEndpoint, number>();
  #clock = 0;

  constructor(name: string, policy: Exclude<Policy, { kind: 'channel' }>) {
    this.name = name;
    this.policy = policy;
  }

  /** Whether the list of versions is known (a pinned list always is). */
  get resolved(): boolean {
    return this.policy.kind === 'specific' || this.versions.size > 0;
  }

  /** The version a request without one reaches: the newest served that did not fail to load
   * (a version refused for its golden check or integrity leaves the default to the one before). */
  default(): ModelEndpoint | undefined {
    const newestFirst = [...this.versions.values()].reverse();
    return newestFirst.find((e) => !e.error) ?? newestFirst[0];
  }

  /** The version list as Triton's configuration states the policy. */
  tritonPolicy(): VersionPolicy {
    return this.policy.kind === 'specific' ? { specific: { versions: this.policy.versions } } : { latest: { num_versions: this.policy.count } };
  }

  /** Mark `endpoint` as just used (least recently used unloads first). */
  touch(endpoint: ModelEndpoint): void {
    this.#lastUsed.set(endpoint, ++this.#clock);
  }

  /** Versions loaded or being loaded. */
  occupied(): ModelEndpoint[] {
    return [...this.versions.values()].filter((e) => e.model !== null || e.loading !== null);
  }

  /** Bytes of a version's weights as loaded (0 until its files were seen). */
  weightsOf(version: string): number {
    let sum = 0;
    for (const size of this.weightBytes.get(version)?.values() ?? []) sum += size;
    return sum;
  }

  /** The least recently used loaded version that no request holds (`busy`), other than `keep`; `null` if all are busy. */
  victim(keep: ModelEndpoint, busy: (e: ModelEndpoint) => boolean): ModelEndpoint | null {
    let best: ModelEndpoint | null = null;
    for (const e of this.versions.values()) {
      if (e === keep || e.model === null || e.loading !== null || busy(e)) continue;
      if (best === null || (this.#lastUsed.get(e) ?? 0) < (this.#lastUsed.get(best) ?? 0)) best = e;
    }
    return best;
  }
}
