// The browser suite's harness: the gateway binary with a config written per test, the real
// `oidc-provider` from tests/e2e/oidc, a plain add-in upstream, HTTP requests, and Chromium.
// Everything listens on 127.0.0.1 (ephemeral ports) and stops when the test ends.

import { spawn, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../../..');
export const SUITE = path.resolve(here, '..');

/** The gateway binary tests/run built (GATEWAY_BIN overrides). */
export const GATEWAY_BIN = process.env.GATEWAY_BIN
  ?? path.join(process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target'), 'debug', 'gateway');

/** Where screenshots go (a CI artifact folder). */
export const ARTIFACTS = process.env.ARTIFACTS_DIR ?? path.join(SUITE, 'artifacts');

export const SECRET = 'browser-suite-session-secret-0123456789abcdef';

/** A free TCP port on 127.0.0.1 (closed again; the caller binds it next). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function tempDir(label) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `gw-browser-${label}-`));
}

let certsDir = null;
/** A dev CA and localhost certificate written once per run by `gateway certs`. */
export function devCerts() {
  if (!certsDir) {
    certsDir = tempDir('certs');
    execFileSync(GATEWAY_BIN, ['certs', '--out', certsDir], { stdio: 'ignore' });
  }
  const cert = path.join(certsDir, 'localhost.pem');
  const spki = new X509Certificate(fs.readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return {
    cert,
    key: path.join(certsDir, 'localhost-key.pem'),
    ca: fs.readFileSync(path.join(certsDir, 'ca.pem')),
    // Chromium trusts exactly this key for the run (--ignore-certificate-errors-spki-list), for
    // pages and WebSockets alike; every other certificate is still checked.
    spkiHash: createHash('sha256').update(spki).digest('base64'),
  };
}

/**
 * One HTTP(S) request. Returns {status, headers, body}. `ca` trusts the dev CA for https.
 * Redirects are not followed: the flow's 302s are what tests look at.
 */
export function request(url, { method = 'GET', headers = {}, body, ca, timeoutMs = 10_000 } = {}) {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(u, { method, headers, ca, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function until(what, timeoutMs, probe) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms${last ? `: ${last.message}` : ''}`);
}

/** A child process whose output is kept for the failure message and which dies with the test. */
function child(command, args, { env = {}, cwd } = {}) {
  const proc = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const log = [];
  proc.stdout.on('data', (d) => log.push(d.toString()));
  proc.stderr.on('data', (d) => log.push(d.toString()));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc,
    logs: () => log.join(''),
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/**
 * The gateway config the suite uses: one listener on a free port (TLS with the dev certificate
 * unless `tls: false`), the given upstream, the `dev` provider, `/api/` requiring the providers
 * listed in `require`, socket.io at `/socket.io/`. `providers` and `extra` are raw TOML.
 */
export async function gatewayConfig({ upstreamPort, tls = true, tokenTtl = '2m', providers = '', require = ['dev'], extra = '' }) {
  const port = await freePort();
  const certs = tls ? devCerts() : null;
  const publicUrl = tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
  const session = tls ? '' : 'cookie_secure = false\ncookie_same_site = "lax"\ncookie_partitioned = false\n';
  const text = `[server]
listen = "127.0.0.1:${port}"
public_url = "${publicUrl}"
${tls ? `tls_cert = "${certs.cert}"\ntls_key = "${certs.key}"\n` : ''}shutdown_grace = "200ms"
shutdown_timeout = "200ms"

[upstream]
addrs = ["127.0.0.1:${upstreamPort}"]
health_check_interval = "1s"

[session]
secret = "env:GATEWAY_SECRET"
token_ttl = "${tokenTtl}"
${session}
[providers.dev]
kind = "dev"
display_name = "Dev sign-in"
${providers}
[[routes]]
prefix = "/api/"
require = ${JSON.stringify(require)}

[channel]
socketio_path = "/socket.io/"
${extra}`;
  return { port, publicUrl, text, ca: certs?.ca };
}

/**
 * Starts `gateway run --config` (or `gateway demo --config`, which also starts the sample add-in
 * on the config's upstream address) and waits until /_gateway/health answers and the upstream is
 * reachable through it.
 */
export async function startGateway(config, { mode = 'run', env = {} } = {}) {
  const dir = tempDir('gw');
  const file = path.join(dir, 'gateway.toml');
  fs.writeFileSync(file, config.text);
  const gw = child(GATEWAY_BIN, [mode, '--config', file], { cwd: dir, env: { GATEWAY_SECRET: SECRET, ...env } });
  const base = config.publicUrl;
  try {
    await until(`gateway ${mode} on ${base}`, 15_000, async () => {
      if (gw.proc.exitCode !== null) throw new Error(`exited with ${gw.proc.exitCode}`);
      const health = await request(`${base}/_gateway/health`, { ca: config.ca, timeoutMs: 1_000 });
      if (health.status !== 200) return false;
      // The first upstream health check may run before the upstream listens: wait for a proxied 2xx/404.
      const page = await request(`${base}/healthz`, { ca: config.ca, timeoutMs: 1_000 });
      return page.status < 500;
    });
  } catch (error) {
    await gw.stop();
    throw new Error(`${error.message}\n--- gateway output ---\n${gw.logs()}`);
  }
  return { ...config, base, logs: gw.logs, stop: () => gw.stop() };
}

/** The real OpenID provider (npm oidc-provider) from tests/e2e/oidc, one confidential client. */
export async function startOidcProvider({ clientId, clientSecret, redirectUris }) {
  const serverDir = path.join(ROOT, 'tests', 'e2e', 'oidc');
  const op = child(process.execPath, ['server.mjs'], {
    cwd: serverDir,
    env: { OIDC_CLIENT_ID: clientId, OIDC_CLIENT_SECRET: clientSecret, OIDC_REDIRECT_URIS: redirectUris.join(',') },
  });
  const issuer = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`oidc-provider not READY in 15 s:\n${op.logs()}`)), 15_000);
    op.proc.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/^READY (\S+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    op.exited.then(({ code }) => reject(new Error(`oidc-provider exited with ${code}:\n${op.logs()}`)));
  });
  return { issuer, logs: op.logs, stop: () => op.stop() };
}

/** A plain HTTP server on 127.0.0.1 serving `routes` ({path: (req, res) => void}). */
export async function startServer(routes) {
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const handler = routes[pathname];
    if (handler) {
      handler(req, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    port: server.address().port,
    stop: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(resolve);
    }),
  };
}

export function sendFile(file, type) {
  return (_req, res) => res.writeHead(200, { 'content-type': type }).end(fs.readFileSync(file));
}

/** `GET /api/whoami` of a plain add-in server: the identity headers it received, nothing else. */
export function whoami(req, res) {
  const seen = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-forwarded-') && k !== 'x-forwarded-access-token'));
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ upstream_saw: seen }));
}

/** A cookie jar for Node-side HTTP clients: the `name=value` pairs the gateway set. */
export class Jar {
  constructor() {
    this.cookies = new Map();
  }
  take(headers) {
    for (const line of headers['set-cookie'] ?? []) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      this.cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
  }
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/**
 * The `dev` provider's popup flow over plain HTTP, as the popup would run it, for the session
 * `connectUrl` belongs to. `decision`: 'approve' or 'deny'. Returns the callback's answer.
 */
export async function devFlow(base, connectUrl, username, decision = 'approve', ca) {
  const jar = new Jar();
  const go = async (url, opts = {}) => {
    const r = await request(new URL(url, base).href, { ...opts, ca, headers: { ...(opts.headers ?? {}), cookie: jar.header() } });
    jar.take(r.headers);
    return r;
  };
  const connect = await go(connectUrl);
  if (connect.status !== 302) throw new Error(`connect answered ${connect.status}: ${connect.body}`);
  const form = await go(connect.headers.location);
  const m = form.body.match(/name="request" value="([^"]*)"/);
  if (!m) throw new Error(`no dev login form: ${form.body}`);
  const requestValue = m[1].replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&amp;', '&');
  const posted = await go('/_gateway/dev/authorize', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ request: requestValue, username, action: decision }).toString(),
  });
  if (posted.status !== 302) throw new Error(`dev login POST answered ${posted.status}: ${posted.body}`);
  return go(posted.headers.location);
}

/**
 * The task pane's side of a popup that did not share its cookies: redeems the handoff code of
 * the completion page `done` with the pane's `jar` (`POST /_gateway/handoff`, the gateway's own
 * Origin) and keeps the rotated cookie. Returns the answer (204 expected).
 */
export async function redeem(base, jar, done, ca) {
  const m = done.body.match(/id="gateway-outcome">([^<]*)<\/script>/);
  if (!m) throw new Error(`no gateway-outcome on the completion page: ${done.body}`);
  const outcome = JSON.parse(m[1]);
  if (!outcome.handoff) throw new Error(`no handoff code: ${m[1]}`);
  const r = await request(`${base}/_gateway/handoff`, {
    method: 'POST', ca,
    headers: { cookie: jar.header(), origin: base, 'content-type': 'application/json' },
    body: JSON.stringify({ code: outcome.handoff }),
  });
  jar.take(r.headers);
  return r;
}

/** Chromium flags the machine needs (closed network, root, no GPU). */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Debian's Chromium through playwright-core, with a fresh profile. `blockThirdPartyCookies`
 * writes the profile preference Chromium's "Block third-party cookies" setting stores.
 */
export async function launchBrowser({ blockThirdPartyCookies = false } = {}) {
  const { chromium } = await import('playwright-core');
  const profile = tempDir('profile');
  if (blockThirdPartyCookies) {
    fs.mkdirSync(path.join(profile, 'Default'), { recursive: true });
    fs.writeFileSync(path.join(profile, 'Default', 'Preferences'), JSON.stringify({
      profile: { block_third_party_cookies: true, cookie_controls_mode: 1 },
    }));
  }
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${devCerts().spkiHash}`],
    viewport: { width: 900, height: 700 },
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a screenshot of `page` as ARTIFACTS/NAME.png (the test's final task pane). */
export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
