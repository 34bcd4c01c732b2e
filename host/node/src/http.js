// HTTP over `fetch`. A platform plugs in its own client by passing any
// object with `send(request) → Promise<response>` (the shapes below) that
// throws `TransportFailure` for a request that produced no response.
import { TransportFailure } from './errors.js';

/**
 * @typedef {object} HttpRequest
 * @property {'GET'|'POST'} method
 * @property {string} url
 * @property {[string, string][]} headers field lines, in order
 * @property {Uint8Array} body
 * @property {number} timeoutMs the whole exchange must end within it
 * @property {string} [clientId] authenticate this client (the host adds its secret)
 * @typedef {{ status: number, headers: [string, string][], body: Uint8Array }} HttpResponse
 * @typedef {{ send(request: HttpRequest): Promise<HttpResponse> }} Http
 * @typedef {string | { secret: string, method?: 'basic' | 'post' } | undefined | null} Credential
 * @typedef {(clientId: string, url: URL) => Credential | Promise<Credential>} Credentials
 *   The client's secret for a request to this URL, or nothing (then nothing
 *   is sent: `no-credentials`). Check the URL's origin before answering.
 */

const formEncode = (s) => new URLSearchParams({ s }).toString().slice(2);

/** `fetch`-based HTTP with client authentication from a credentials callback. */
export class FetchHttp {
  /**
   * @param {{ credentials?: Credentials, fetch?: typeof fetch, maxBodyBytes?: number }} [options]
   */
  constructor(options = {}) {
    this.credentials = options.credentials ?? (() => undefined);
    this.fetch = options.fetch ?? globalThis.fetch;
    this.maxBodyBytes = options.maxBodyBytes ?? 1 << 20;
  }

  /** @param {HttpRequest} request @returns {Promise<HttpResponse>} */
  async send(request) {
    const url = new URL(request.url);
    const headers = new Headers();
    for (const [name, value] of request.headers) headers.append(name, value);
    let body = request.body;
    if (request.clientId !== undefined) {
      const credential = await this.credentials(request.clientId, url);
      if (credential === undefined || credential === null) throw new TransportFailure('no-credentials');
      const { secret, method = 'basic' } = typeof credential === 'string' ? { secret: credential } : credential;
      if (method === 'basic') {
        // RFC 6749 §2.3.1: both parts form-urlencoded, then Basic.
        const pair = `${formEncode(request.clientId)}:${formEncode(secret)}`;
        headers.append('Authorization', `Basic ${Buffer.from(pair).toString('base64')}`);
      } else {
        const extra = new TextEncoder().encode(`client_id=${formEncode(request.clientId)}&client_secret=${formEncode(secret)}`);
        const joined = new Uint8Array(body.length + (body.length ? 1 : 0) + extra.length);
        joined.set(body);
        if (body.length) joined[body.length] = 0x26; // '&'
        joined.set(extra, body.length + (body.length ? 1 : 0));
        body = joined;
      }
    }
    const signal = AbortSignal.timeout(request.timeoutMs);
    let response;
    try {
      response = await this.fetch(url, {
        method: request.method,
        headers,
        body: request.method === 'GET' ? undefined : body,
        redirect: 'manual',
        signal,
      });
    } catch (e) {
      throw transportFailure(e, false);
    }
    const lines = [];
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') lines.push([name, value]);
    });
    for (const cookie of response.headers.getSetCookie?.() ?? []) lines.push(['set-cookie', cookie]);
    const chunks = [];
    let size = 0;
    try {
      if (response.body) {
        for await (const chunk of response.body) {
          size += chunk.length;
          if (size > this.maxBodyBytes) {
            await response.body.cancel().catch(() => {});
            throw new TransportFailure('body-too-large');
          }
          chunks.push(chunk);
        }
      }
    } catch (e) {
      if (e instanceof TransportFailure) throw e;
      throw transportFailure(e, true);
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) (out.set(c, at), (at += c.length));
    return { status: response.status, headers: lines, body: out };
  }
}

/** Maps a fetch failure to a transport error; never includes a request body or header. */
function transportFailure(e, afterSend) {
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new TransportFailure('timeout');
  const code = e?.cause?.code ?? e?.code ?? '';
  if (/^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL)$/.test(code)) return new TransportFailure('connection-refused');
  if (/^(ENOTFOUND|EAI_AGAIN|EAI_FAIL)$/.test(code)) return new TransportFailure('dns');
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return new TransportFailure('tls');
  if (afterSend || /^(ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(code)) return new TransportFailure('connection-lost');
  return new TransportFailure('other', `fetch failed${code ? `: ${code}` : ''}`);
}
