// The popup flow in Debian's Chromium (playwright-core): task pane → Sign in → popup → the
// provider's page → the popup closes itself → the task pane learns the outcome from the channel
// → "Call API" shows what the unmodified upstream saw. The task panes are `gateway demo`'s
// sample add-in (client.js) and pages using socket.io-client 4 and 1.3.7 as existing add-ins do.
// Every test saves a screenshot of its final task pane in ARTIFACTS (tests/e2e/browser/artifacts).

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  freePort, gatewayConfig, launchBrowser, screenshot, sendFile, startGateway, startOidcProvider, startServer, SUITE, whoami,
} from '../lib/harness.mjs';

const WAIT_MS = 15_000;

/** Waits until `selector` in `frame` (a Page or Frame) shows text matching `pattern`. */
async function shows(frame, selector, pattern) {
  try {
    await frame.locator(selector, { hasText: pattern }).waitFor({ timeout: WAIT_MS });
  } catch (error) {
    const text = await frame.locator(selector).textContent().catch(() => '(gone)');
    throw new Error(`${selector} never matched ${pattern}; it shows ${JSON.stringify(text)}`, { cause: error });
  }
}

/** Clicks `selector` in `frame` and returns the popup it opens. */
async function openPopup(context, frame, selector) {
  const [popup] = await Promise.all([context.waitForEvent('page', { timeout: WAIT_MS }), frame.click(selector)]);
  return popup;
}

/** On the dev provider's form in `popup`: type `user` and press `button` (approve | deny); the popup must close itself. */
async function devLogin(popup, user, button = 'approve') {
  await popup.waitForSelector('#username', { timeout: WAIT_MS });
  await popup.fill('#username', user);
  await Promise.all([popup.waitForEvent('close', { timeout: WAIT_MS }), popup.click(`#${button}`)]);
}

/** "Call API" in the task pane: the status and the identity headers the upstream received. */
async function callApi(frame) {
  // Clear the previous answer first, or the wait below could read it instead of the new one.
  await frame.locator('#api-result').evaluate((el) => { el.textContent = ''; });
  await frame.click('#call-api');
  await shows(frame, '#api-result', /^\d{3} /);
  const text = await frame.locator('#api-result').textContent();
  const status = Number(text.slice(0, 3));
  return { status, body: status === 200 ? JSON.parse(text.slice(4)) : text.slice(4) };
}

/** The demo's own gateway (`gateway demo --config`), with its sample add-in, over TLS. */
async function demoGateway(options = {}) {
  const upstreamPort = await freePort();
  return startGateway(await gatewayConfig({ upstreamPort, ...options }), { mode: 'demo', env: options.env });
}

describe('the popup flow in Chromium', () => {
  let browser;
  const stops = [];
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    for (const stop of stops.reverse()) await stop();
  });
  /** A new tab in a fresh browser context state: cookies of earlier tests do not leak in. */
  async function taskPane(url) {
    await browser.context.clearCookies();
    const page = await browser.context.newPage();
    await page.goto(url);
    return page;
  }

  test('dev provider: sign in, the task pane shows the user, the upstream sees the identity', async () => {
    const gw = await demoGateway();
    stops.push(gw.stop);
    const page = await taskPane(`${gw.base}/`);
    await shows(page, '#status', 'Not signed in');
    assert.equal((await callApi(page)).status, 401, 'the protected route must refuse before sign-in');
    const popup = await openPopup(browser.context, page, '#sign-in-dev');
    await devLogin(popup, 'ada');
    await shows(page, '#status', 'Signed in as Dev User ada (dev)');
    const api = await callApi(page);
    assert.equal(api.status, 200);
    assert.equal(api.body.upstream_saw['x-forwarded-user'], 'ada');
    await screenshot(page, 'dev-popup-signed-in');
    await page.close();
  });

  test('gateway.fetch: without a usable token it signs in with the popup and retries once', async () => {
    const gw = await demoGateway();
    stops.push(gw.stop);
    const page = await taskPane(`${gw.base}/`);
    await shows(page, '#status', 'Not signed in');
    // A page button (a click is the user gesture a popup needs) that calls gateway.fetch.
    await page.evaluate(() => {
      window.gateway.useTokenSource(() => null);
      const button = document.createElement('button');
      button.id = 'fetch-api';
      button.onclick = () => {
        window.gateway.fetch('/api/whoami').then(async (r) => { window.fetchResult = { status: r.status, body: await r.text() }; },
          (e) => { window.fetchResult = { error: String(e) }; });
      };
      document.body.appendChild(button);
    });
    await devLogin(await openPopup(browser.context, page, '#fetch-api'), 'fay');
    await page.waitForFunction(() => window.fetchResult, null, { timeout: WAIT_MS });
    const result = await page.evaluate(() => window.fetchResult);
    assert.equal(result.status, 200, JSON.stringify(result));
    assert.equal(JSON.parse(result.body).upstream_saw['x-forwarded-user'], 'fay');
    await page.close();
  });

  test('real oidc-provider: login and consent pages in the popup, then the task pane updates', async () => {
    const port = await freePort();
    const op = await startOidcProvider({
      clientId: 'gateway-browser',
      clientSecret: 'browser-suite-oidc-secret-0123456789',
      redirectUris: [`https://localhost:${port}/connect/op/callback`],
    });
    stops.push(op.stop);
    const upstreamPort = await freePort();
    const config = await gatewayConfig({
      upstreamPort,
      require: ['op'],
      providers: `[providers.op]\nkind = "oidc"\nissuer = "${op.issuer}"\nclient_id = "gateway-browser"\n`
        + 'client_secret = "env:OP_SECRET"\ndisplay_name = "OpenID provider"\nscopes = ["openid", "email", "profile"]\n',
    });
    // The listener port must be the one the provider knows the redirect URI for.
    config.text = config.text.replaceAll(`:${config.port}`, `:${port}`);
    config.port = port;
    config.publicUrl = `https://localhost:${port}`;
    const gw = await startGateway(config, { mode: 'demo', env: { OP_SECRET: 'browser-suite-oidc-secret-0123456789' } });
    stops.push(gw.stop);
    const page = await taskPane(`${gw.base}/`);
    await shows(page, '#status', 'Not signed in');
    const popup = await openPopup(browser.context, page, '#sign-in-op');
    const closed = popup.waitForEvent('close', { timeout: WAIT_MS });
    // oidc-provider's development pages: a login form (any password), then a consent form.
    await popup.waitForSelector('input[name="login"]', { timeout: WAIT_MS });
    await popup.fill('input[name="login"]', 'grace');
    await popup.fill('input[name="password"]', 'any');
    await popup.click('button[type="submit"]');
    await popup.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached', timeout: WAIT_MS });
    await popup.click('button[type="submit"]');
    await closed;
    await shows(page, '#status', 'Signed in as User grace (op)');
    const api = await callApi(page);
    assert.equal(api.status, 200);
    assert.equal(api.body.upstream_saw['x-forwarded-user'], 'grace');
    assert.equal(api.body.upstream_saw['x-forwarded-email'], 'grace@example.test');
    await screenshot(page, 'oidc-provider-signed-in');
    await page.close();
  });

  test('token_ttl = "3s": the task pane shows the expiry without a reload', async () => {
    const gw = await demoGateway({ tokenTtl: '3s' });
    stops.push(gw.stop);
    const page = await taskPane(`${gw.base}/`);
    await shows(page, '#status', 'Not signed in');
    await devLogin(await openPopup(browser.context, page, '#sign-in-dev'), 'ada');
    await shows(page, '#status', 'Signed in as Dev User ada (dev)');
    await shows(page, '#status', 'Session expired: sign in again');
    assert.equal((await callApi(page)).status, 401, 'expired tokens must not reach the upstream');
    await screenshot(page, 'token-ttl-expired');
    await page.close();
  });

  test('the provider refuses: the popup closes and the task pane shows the failure', async () => {
    const gw = await demoGateway();
    stops.push(gw.stop);
    const page = await taskPane(`${gw.base}/`);
    await shows(page, '#status', 'Not signed in');
    await devLogin(await openPopup(browser.context, page, '#sign-in-dev'), 'nobody', 'deny');
    await shows(page, '#status', 'Sign-in failed: access_denied');
    assert.equal((await callApi(page)).status, 401);
    await screenshot(page, 'provider-refused');
    await page.close();
  });

  describe('task panes using socket.io-client bundles (an unmodified add-in server)', () => {
    let gw;
    before(async () => {
      const modules = path.join(SUITE, 'node_modules');
      const upstream = await startServer({
        '/socketio-4.html': sendFile(path.join(SUITE, 'pages', 'socketio-4.html'), 'text/html; charset=utf-8'),
        '/socketio-1.html': sendFile(path.join(SUITE, 'pages', 'socketio-1.html'), 'text/html; charset=utf-8'),
        '/vendor/socket.io-4.min.js': sendFile(path.join(modules, 'socket.io-client', 'dist', 'socket.io.min.js'), 'application/javascript'),
        '/vendor/socket.io-1.3.7.js': sendFile(path.join(modules, 'socket.io-client-1', 'socket.io.js'), 'application/javascript'),
        '/api/whoami': whoami,
      });
      stops.push(upstream.stop);
      gw = await startGateway(await gatewayConfig({ upstreamPort: upstream.port }));
      stops.push(gw.stop);
    });

    for (const [version, file] of [['4', 'socketio-4.html'], ['1.3.7', 'socketio-1.html']]) {
      test(`socket.io-client ${version}: io.connect + socket.on('auth_success') updates the task pane`, async () => {
        const page = await taskPane(`${gw.base}/${file}`);
        await shows(page, '#status', 'Not signed in');
        await devLogin(await openPopup(browser.context, page, '#sign-in'), `sio${version}`);
        await shows(page, '#status', `Signed in as Dev User sio${version}`);
        const api = await callApi(page);
        assert.equal(api.status, 200);
        assert.equal(api.body.upstream_saw['x-forwarded-user'], `sio${version}`);
        // Both clients start with polling and upgrade to websocket when the server offers it.
        await page.waitForFunction(() => window.engineTransport && window.engineTransport() === 'websocket', null, { timeout: WAIT_MS });
        await screenshot(page, `socketio-${version}-signed-in`);
        await page.close();
      });
    }
  });
});

describe('a connect link opened in another browser (account takeover by link)', () => {
  test('the victim signs in from the attacker\'s link; the attacker\'s task pane stays signed out', async () => {
    const gw = await demoGateway();
    const attacker = await launchBrowser();
    const victim = await launchBrowser();
    try {
      const pane = await attacker.context.newPage();
      await pane.goto(`${gw.base}/`);
      await shows(pane, '#status', 'Not signed in');
      const link = await pane.evaluate(async () => (await (await fetch('/_gateway/session')).json()).providers.dev.connect_url);
      // The victim opens the link in a browser of their own (a chat message, an email) and signs in.
      const tab = await victim.context.newPage();
      await tab.goto(`${gw.base}${link}`);
      await tab.waitForSelector('#username', { timeout: WAIT_MS });
      await tab.fill('#username', 'victim');
      await Promise.all([tab.waitForURL(/\/connect\/dev\/callback/, { timeout: WAIT_MS }), tab.click('#approve')]);
      await tab.waitForSelector('#gateway-outcome', { state: 'attached', timeout: WAIT_MS });
      const outcome = JSON.parse(await tab.locator('#gateway-outcome').textContent());
      assert.equal(outcome.status, 'success');
      assert.ok(outcome.handoff, 'the callback attached the sign-in instead of parking it');
      await new Promise((r) => setTimeout(r, 1500));
      assert.match(await pane.locator('#status').textContent(), /Not signed in/);
      assert.equal((await callApi(pane)).status, 401, 'the link signed the attacker\'s session in as the victim');
      await screenshot(pane, 'link-attack-attacker-pane');
    } finally {
      await attacker.close();
      await victim.close();
      await gw.stop();
    }
  });
});

describe('the task pane in a cross-origin iframe with third-party cookies blocked (Office on the web)', () => {
  for (const partitioned of [true, false]) {
    test(partitioned
      ? 'Partitioned (CHIPS) session cookie: the whole flow works inside the iframe'
      : 'control: without Partitioned the iframe\'s cookie is blocked, so the API call is refused', async () => {
      const upstreamPort = await freePort();
      const config = await gatewayConfig({ upstreamPort });
      if (!partitioned) config.text = config.text.replace('[session]\n', '[session]\ncookie_partitioned = false\n');
      const gw = await startGateway(config, { mode: 'demo' });
      const host = await startServer({
        '/': (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(
          `<!doctype html><title>Office on the web</title><h1>Host document</h1>
           <iframe id="taskpane" src="${gw.base}/" width="700" height="520"></iframe>`,
        ),
      });
      const browser = await launchBrowser({ blockThirdPartyCookies: true });
      try {
        const page = await browser.context.newPage();
        // 127.0.0.1 and localhost are different sites: the gateway is a third party here.
        await page.goto(`http://127.0.0.1:${host.port}/`);
        const frame = await (await page.waitForSelector('#taskpane')).contentFrame();
        await shows(frame, '#status', 'Not signed in');
        // The popup is a top-level page: its cookies are not the iframe's, so the sign-in comes
        // back as a handoff code that client.js in the iframe redeems.
        const handoff = page.waitForResponse((r) => r.url().endsWith('/_gateway/handoff'), { timeout: WAIT_MS });
        await devLogin(await openPopup(browser.context, frame, '#sign-in-dev'), 'ada');
        if (partitioned) {
          assert.equal((await handoff).status(), 204, 'the iframe did not redeem the handoff code');
          await shows(frame, '#status', 'Signed in as Dev User ada (dev)');
          const api = await callApi(frame);
          assert.equal(api.status, 200, `the API call from the iframe answered ${api.status}: ${api.body}`);
          assert.equal(api.body.upstream_saw['x-forwarded-user'], 'ada');
        } else {
          handoff.catch(() => {});
          // Every request of the iframe arrives without the blocked cookie: a new session each
          // time, so the protected route refuses. This is what the Partitioned case overcomes.
          const api = await callApi(frame);
          assert.equal(api.status, 401, 'third-party cookies are not blocked, so this suite proves nothing');
        }
        await screenshot(page, partitioned ? 'iframe-3p-cookies-blocked-partitioned' : 'iframe-3p-cookies-blocked-unpartitioned');
      } finally {
        await browser.close();
        await host.stop();
        await gw.stop();
      }
    });
  }
});

describe('a socket.io-client 1.3.7 task pane in a cross-origin iframe (client.js loaded, nothing else)', () => {
  test('the popup\'s handoff is redeemed by client.js and socket.io hears auth_success', async () => {
    const modules = path.join(SUITE, 'node_modules');
    const upstream = await startServer({
      '/socketio-1.html': sendFile(path.join(SUITE, 'pages', 'socketio-1.html'), 'text/html; charset=utf-8'),
      '/vendor/socket.io-1.3.7.js': sendFile(path.join(modules, 'socket.io-client-1', 'socket.io.js'), 'application/javascript'),
      '/api/whoami': whoami,
    });
    const gw = await startGateway(await gatewayConfig({ upstreamPort: upstream.port }));
    const host = await startServer({
      '/': (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(
        `<!doctype html><title>Office on the web</title><iframe id="taskpane" src="${gw.base}/socketio-1.html" width="700" height="520"></iframe>`,
      ),
    });
    const browser = await launchBrowser({ blockThirdPartyCookies: true });
    try {
      const page = await browser.context.newPage();
      await page.goto(`http://127.0.0.1:${host.port}/`);
      const frame = await (await page.waitForSelector('#taskpane')).contentFrame();
      await shows(frame, '#status', 'Not signed in');
      const handoff = page.waitForResponse((r) => r.url().endsWith('/_gateway/handoff'), { timeout: WAIT_MS });
      await devLogin(await openPopup(browser.context, frame, '#sign-in'), 'sio1');
      assert.equal((await handoff).status(), 204);
      await shows(frame, '#status', 'Signed in as Dev User sio1');
      const api = await callApi(frame);
      assert.equal(api.status, 200, api.body);
      assert.equal(api.body.upstream_saw['x-forwarded-user'], 'sio1');
      await screenshot(page, 'iframe-socketio-1-handoff');
    } finally {
      await browser.close();
      await host.stop();
      await gw.stop();
      await upstream.stop();
    }
  });
});
