// A TLS client that speaks HTTP/1.1 by hand, for the requests a well-behaved client library would
// never send: truncated bodies, headers that never end, Expect: 100-continue held open, floods.
import { Buffer } from 'node:buffer';
import { request as httpsRequest, type Agent } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** Where a test server listens and the CA its certificate chains to. */
export interface Target {
  readonly port: number;
  readonly ca: string;
}

/**
 * A client address other than 127.0.0.1 (Linux routes all of 127.0.0.0/8 to the loopback), so a
 * test can be several peers: `peerAddress(0)` is 127.0.1.1, `peerAddress(1)` 127.0.1.2, …
 */
export function peerAddress(index: number): string {
  return `127.0.${1 + Math.floor(index / 250)}.${1 + (index % 250)}`;
}

/** What came back on one connection, read until the connection closed. */
export interface RawResult {
  /** Status of the final (non-1xx) response, if one arrived. */
  readonly status?: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Everything the server sent, including interim responses. */
  readonly raw: string;
  /** A socket error seen by the client (e.g. ECONNRESET, EPIPE), if any. */
  readonly error?: string;
}

/** Parses the last complete non-1xx response out of what a server sent on one connection. */
export function parseResponses(raw: string): Omit<RawResult, 'raw' | 'error'> {
  let rest = raw;
  let final: Omit<RawResult, 'raw' | 'error'> = { headers: {}, body: '' };
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const bodyStart = end + 4;
    const body = Buffer.from(rest.slice(bodyStart), 'utf8').subarray(0, length).toString('utf8');
    rest = rest.slice(bodyStart + body.length);
    if (status >= 200) final = { status, headers, body };
  }
  return final;
}

/** Opens a TLS connection that trusts only `target.ca`; resolves once the handshake is done. */
export function openTls(target: Target, localAddress?: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: target.port, ca: target.ca, servername: 'localhost', ...(localAddress === undefined ? {} : { localAddress }) });
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Opens a plain TCP connection to the TLS port (a client that never starts the handshake). */
export function openTcp(target: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port: target.port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Resolves with everything the server sent once the connection is closed (by either side). */
export function readUntilClosed(socket: Socket): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // Writing to a server that already answered and hung up is expected here; note it only.
    socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    socket.once('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      resolve({ ...parseResponses(raw), raw, ...(error === undefined ? {} : { error }) });
    });
  });
}

/** Resolves when the server's first bytes on `socket` have arrived (e.g. `100 Continue`). */
export function firstData(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8')));
    socket.once('close', () => reject(new Error('closed before any data')));
  });
}

/** Returns the head of a POST /mutate request with the given headers (Host added). */
export function requestHead(path: string, headers: Readonly<Record<string, string | number>>): string {
  const lines = [`POST ${path} HTTP/1.1`, 'Host: localhost', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Sends raw bytes on a fresh TLS connection and resolves with what came back once it closed. */
export async function rawExchange(target: Target, bytes: string | Buffer, options: { end?: boolean } = {}): Promise<RawResult> {
  const socket = await openTls(target);
  const result = readUntilClosed(socket);
  socket.write(bytes);
  if (options.end === true) socket.end();
  return result;
}

/** What a well-formed HTTPS request got back. */
export interface HttpsResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** POSTs `body` with a real HTTPS client that verifies the server against `target.ca`. */
export function httpsPost(
  target: Target,
  path: string,
  body: string | Buffer,
  headers: Readonly<Record<string, string>> = { 'content-type': 'application/json' },
  agent: Agent | false = false,
  localAddress?: string,
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      { host: '127.0.0.1', servername: 'localhost', port: target.port, path, method: 'POST', ca: target.ca, headers, agent, ...(localAddress === undefined ? {} : { localAddress }) },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** GETs `path` over HTTPS, verifying the server against `target.ca`. */
export function httpsGet(target: Target, path: string): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      { host: '127.0.0.1', servername: 'localhost', port: target.port, path, method: 'GET', ca: target.ca, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/** Matches what a leaked stack trace or internal error would look like in a response body. */
export const STACK_TRACE = /\n\s+at |\bat [\w.<>]+ \(|\.(ts|js):\d+|Error:|node:internal/;
