// The real npm socket.io-client@4 in Node against the gateway's socket.io endpoint (Engine.IO 4):
// its default path (polling, then the websocket upgrade with probe), websocket only, joins by
// cookie and by ticket, the four events with their contract payloads, and the refusals.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { io } from 'socket.io-client';

import { devFlow, gatewayConfig, Jar, redeem, request, startGateway, startServer, whoami } from '../lib/harness.mjs';

const WAIT_MS = 8_000;

/** A fresh browser-less session: its cookie jar and /_gateway/session JSON. */
async function newSession(gw) {
  const jar = new Jar();
  const r = await request(`${gw.base}/_gateway/session`);
  assert.equal(r.status, 200, r.body);
  jar.take(r.headers);
  return { jar, info: JSON.parse(r.body) };
}

/** A socket.io-client@4 socket recording every event; `await s.next(name)` waits for one. */
function connect(gw, options = {}) {
  const socket = io(gw.base, { path: '/socket.io/', reconnection: false, timeout: WAIT_MS, ...options });
  const seen = [];
  const waiters = [];
  const record = (name, data) => {
    seen.push({ name, data });
    for (const w of [...waiters]) {
      if (w.name === name) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(data);
      }
    }
  };
  for (const name of ['init', 'auth_success', 'auth_failure', 'auth_expired']) socket.on(name, (data) => record(name, data));
  socket.on('connect_error', (error) => record('connect_error', error));
  return {
    socket,
    seen,
    next(name) {
      const earlier = seen.find((e) => e.name === name);
      if (earlier) return Promise.resolve(earlier.data);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${name} in ${WAIT_MS} ms; saw ${JSON.stringify(seen.map((e) => e.name))}`)), WAIT_MS);
        waiters.push({ name, resolve: (d) => { clearTimeout(timer); resolve(d); } });
      });
    },
    close: () => socket.close(),
  };
}

function waitUpgrade(socket) {
  const engine = socket.io.engine;
  if (engine.transport.name === 'websocket') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no websocket upgrade in ${WAIT_MS} ms`)), WAIT_MS);
    engine.once('upgrade', () => { clearTimeout(timer); resolve(); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('socket.io-client@4 (Node) against the gateway', () => {
  let upstream;
  let gw;
  let shortGw;
  before(async () => {
    upstream = await startServer({ '/api/whoami': whoami });
    gw = await startGateway(await gatewayConfig({ upstreamPort: upstream.port, tls: false }));
    shortGw = await startGateway(await gatewayConfig({ upstreamPort: upstream.port, tls: false, tokenTtl: '2s' }));
  });
  after(async () => {
    await gw?.stop();
    await shortGw?.stop();
    await upstream?.stop();
  });

  test('default transports: polling, upgrade to websocket, init then auth_success with the contract payload', async () => {
    const { jar, info } = await newSession(gw);
    const s = connect(gw, { extraHeaders: { cookie: jar.header(), origin: gw.base } });
    try {
      assert.equal(await s.next('init'), 'Private socket session established');
      await waitUpgrade(s.socket);
      assert.equal(s.socket.io.engine.transport.name, 'websocket');
      const done = await devFlow(gw.base, info.providers.dev.connect_url, 'ada');
      assert.equal(done.status, 200, done.body);
      assert.equal((await redeem(gw.base, jar, done)).status, 204);
      assert.deepEqual(await s.next('auth_success'), [{ providerName: 'dev', displayName: 'Dev User ada' }]);
      // The session is signed in for the proxied API too.
      const api = await request(`${gw.base}/api/whoami`, { headers: { cookie: jar.header() } });
      assert.equal(api.status, 200, api.body);
      assert.equal(JSON.parse(api.body).upstream_saw['x-forwarded-user'], 'ada');
    } finally {
      s.close();
    }
  });

  test('websocket transport only, joined by ?ticket= without any cookie', async () => {
    const { jar, info } = await newSession(gw);
    const s = connect(gw, { transports: ['websocket'], query: { ticket: info.ticket }, extraHeaders: { origin: gw.base } });
    try {
      assert.equal(await s.next('init'), 'Private socket session established');
      assert.equal(s.socket.io.engine.transport.name, 'websocket');
      await redeem(gw.base, jar, await devFlow(gw.base, info.providers.dev.connect_url, 'grace'));
      assert.deepEqual(await s.next('auth_success'), [{ providerName: 'dev', displayName: 'Dev User grace' }]);
    } finally {
      s.close();
    }
  });

  test('polling only: a late joiner of a signed-in session gets auth_success right after init', async () => {
    const { jar, info } = await newSession(gw);
    await redeem(gw.base, jar, await devFlow(gw.base, info.providers.dev.connect_url, 'linus'));
    const s = connect(gw, { transports: ['polling'], extraHeaders: { cookie: jar.header(), origin: gw.base } });
    try {
      await s.next('auth_success');
      assert.deepEqual(s.seen.map((e) => e.name), ['init', 'auth_success']);
      assert.deepEqual(s.seen[1].data, [{ providerName: 'dev', displayName: 'Dev User linus' }]);
      assert.equal(s.socket.io.engine.transport.name, 'polling');
    } finally {
      s.close();
    }
  });

  test('the provider refuses: auth_failure names the provider and the OAuth error', async () => {
    const { jar, info } = await newSession(gw);
    const s = connect(gw, { extraHeaders: { cookie: jar.header(), origin: gw.base } });
    try {
      await s.next('init');
      const done = await devFlow(gw.base, info.providers.dev.connect_url, 'nobody', 'deny');
      assert.ok(done.status >= 400 && done.status < 500, `a denied sign-in answered ${done.status}`);
      const failure = await s.next('auth_failure');
      assert.equal(failure.providerName, 'dev');
      assert.equal(failure.error, 'access_denied');
      assert.ok(!s.seen.some((e) => e.name === 'auth_success'), 'a refused sign-in must not signal success');
    } finally {
      s.close();
    }
  });

  test('token_ttl = "2s": auth_expired arrives without any request', async () => {
    const { jar, info } = await newSession(shortGw);
    // A websocket keeps the session of its handshake when the sign-in rotates the cookie (a
    // polling client would have to send the new cookie, as a browser does by itself).
    const s = connect(shortGw, { transports: ['websocket'], extraHeaders: { cookie: jar.header(), origin: shortGw.base } });
    try {
      await s.next('init');
      await redeem(shortGw.base, jar, await devFlow(shortGw.base, info.providers.dev.connect_url, 'ada'));
      await s.next('auth_success');
      assert.deepEqual(await s.next('auth_expired'), [{ providerName: 'dev' }]);
      const api = await request(`${shortGw.base}/api/whoami`, { headers: { cookie: jar.header() } });
      assert.equal(api.status, 401, 'expired tokens must not authenticate');
    } finally {
      s.close();
    }
  });

  test('two sessions never see each other\'s events', async () => {
    const a = await newSession(gw);
    const b = await newSession(gw);
    // Websockets: they keep the session of their handshake when the sign-ins rotate the cookies.
    const sa = connect(gw, { transports: ['websocket'], extraHeaders: { cookie: a.jar.header(), origin: gw.base } });
    const sb = connect(gw, { transports: ['websocket'], extraHeaders: { cookie: b.jar.header(), origin: gw.base } });
    try {
      await Promise.all([sa.next('init'), sb.next('init')]);
      await redeem(gw.base, a.jar, await devFlow(gw.base, a.info.providers.dev.connect_url, 'alice'));
      await sa.next('auth_success');
      await redeem(gw.base, b.jar, await devFlow(gw.base, b.info.providers.dev.connect_url, 'bob'));
      await sb.next('auth_success');
      await sleep(300);
      assert.deepEqual(sa.seen.map((e) => [e.name, e.data]), [
        ['init', 'Private socket session established'],
        ['auth_success', [{ providerName: 'dev', displayName: 'Dev User alice' }]],
      ]);
      assert.deepEqual(sb.seen.map((e) => [e.name, e.data]), [
        ['init', 'Private socket session established'],
        ['auth_success', [{ providerName: 'dev', displayName: 'Dev User bob' }]],
      ]);
    } finally {
      sa.close();
      sb.close();
    }
  });

  for (const [label, options] of [
    ['a forged session cookie', (s) => ({ extraHeaders: { cookie: s.jar.header().replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), origin: gw.base } })],
    ['a forged ticket', (s) => ({ query: { ticket: `${s.info.ticket.slice(0, -2)}xx` }, extraHeaders: { origin: gw.base } })],
    ['a cross-site Origin', (s) => ({ extraHeaders: { cookie: s.jar.header(), origin: 'https://evil.example' } })],
    ['no cookie and no ticket', () => ({ extraHeaders: { origin: gw.base } })],
  ]) {
    test(`${label} joins nothing: connect_error, never init`, async () => {
      const session = await newSession(gw);
      const s = connect(gw, options(session));
      try {
        const error = await s.next('connect_error');
        assert.ok(error instanceof Error, `connect_error carries an Error, got ${error}`);
        await sleep(200);
        assert.ok(!s.seen.some((e) => e.name === 'init'), `saw ${JSON.stringify(s.seen.map((e) => e.name))}`);
        assert.equal(s.socket.connected, false);
      } finally {
        s.close();
      }
    });
  }
});
