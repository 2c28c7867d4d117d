/** HTTP helpers of the KServe endpoint. @module */

export const JSON_HEADERS = { 'content-type': 'application/json' };

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** Longest error message sent: messages quote what they refuse (a tensor's name, dims), and
 * an error must not echo a multi-megabyte request back. */
const MAX_ERROR_CHARS = 2048;

/** KServe's error body is `{ "error": "<message>" }`; `code` is brasa's addition. */
export function errorResponse(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  const error = message.length > MAX_ERROR_CHARS ? `${message.slice(0, MAX_ERROR_CHARS)}… (${message.length - MAX_ERROR_CHARS} more characters)` : message;
  return json(status, { error, code }, headers);
}

/** 405 for a route that takes `allow` (`GET` routes answer HEAD too). */
export function notAllowed(allow: 'GET' | 'POST'): Response {
  const methods = allow === 'GET' ? 'GET, HEAD' : allow;
  return errorResponse(405, 'method_not_allowed', `method not allowed here; use ${methods}`, { allow: methods });
}

export class BodyTooLarge extends Error {}

/** The body, refusing more than `limit` bytes without reading them all. */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge(`request body is over ${limit} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Wait `ms` (at least one macrotask), or less if `promise` settles first. */
export function sleepOrSettle(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
