// A real, certified OpenID provider (panva/oidc-provider) for the gateway's integration tests.
//
// It serves one confidential client on http://127.0.0.1:PORT with the library's development
// interactions: any login and any password sign in, and the login becomes `sub`. Started by
// tests/src/oidc_provider.rs; runnable by hand: `node server.mjs --port 4000 --client-id gw
// --client-secret s3cret --redirect-uris http://127.0.0.1:3001/connect/oidc/callback`.
//
// Settings (a command-line option wins over its environment variable):
//   --port            OIDC_PORT                 port on 127.0.0.1; 0 (the default) picks a free one
//   --client-id       OIDC_CLIENT_ID            required
//   --client-secret   OIDC_CLIENT_SECRET        required
//   --redirect-uris   OIDC_REDIRECT_URIS        required, comma-separated
//   --refresh-tokens  OIDC_REFRESH_TOKENS       always (default): every code grant gets one;
//                                               offline_access: only with that scope and prompt=consent
//   --access-token-ttl OIDC_ACCESS_TOKEN_TTL    seconds, default 3600
//
// Stdout carries exactly one line, `READY http://127.0.0.1:PORT` (the issuer), once listening;
// everything else (the library's notices included) goes to stderr. It exits on SIGTERM or
// SIGINT, and when its stdin is a pipe that closes (the harness died).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// The library prints its "you SHOULD change this default" notices with console.info (stdout),
// which must carry nothing but the READY line.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const OPTIONS = {
  port: { env: 'OIDC_PORT', fallback: '0' },
  'client-id': { env: 'OIDC_CLIENT_ID' },
  'client-secret': { env: 'OIDC_CLIENT_SECRET' },
  'redirect-uris': { env: 'OIDC_REDIRECT_URIS' },
  'refresh-tokens': { env: 'OIDC_REFRESH_TOKENS', fallback: 'always' },
  'access-token-ttl': { env: 'OIDC_ACCESS_TOKEN_TTL', fallback: '3600' },
};

function fail(message) {
  process.stderr.write(`oidc server: ${message}\n`);
  process.exit(2);
}

function readSettings() {
  let parsed;
  try {
    parsed = parseArgs({
      options: Object.fromEntries(Object.keys(OPTIONS).map((name) => [name, { type: 'string' }])),
      strict: true,
    }).values;
  } catch (error) {
    fail(error.message);
  }
  const settings = {};
  for (const [name, { env, fallback }] of Object.entries(OPTIONS)) {
    const value = parsed[name] ?? process.env[env] ?? fallback;
    if (value === undefined || value === '') fail(`--${name} (or ${env}) is required`);
    settings[name] = value;
  }
  const port = Number(settings.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${settings.port}`);
  const ttl = Number(settings['access-token-ttl']);
  if (!Number.isInteger(ttl) || ttl < 1) fail(`bad access token ttl ${settings['access-token-ttl']}`);
  if (!['always', 'offline_access'].includes(settings['refresh-tokens'])) {
    fail(`refresh tokens must be always or offline_access, not ${settings['refresh-tokens']}`);
  }
  return {
    port,
    clientId: settings['client-id'],
    clientSecret: settings['client-secret'],
    redirectUris: settings['redirect-uris'].split(',').map((uri) => uri.trim()).filter(Boolean),
    refreshAlways: settings['refresh-tokens'] === 'always',
    accessTokenTtl: ttl,
  };
}

// A fresh signing key for every run, so no test can depend on the library's published dev keys.
function signingKeys() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `rs256-${crypto.randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' }] };
}

// Every account exists: its id is the login typed into the dev sign-in form.
async function findAccount(_ctx, id) {
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: `${id}@example.test`,
        email_verified: true,
        name: `User ${id}`,
        preferred_username: id,
      };
    },
  };
}

// Error pages as plain `key: value` lines, so that a failing test quotes the error itself.
async function renderError(ctx, out) {
  ctx.type = 'text';
  ctx.body = Object.entries(out).map(([key, value]) => `${key}: ${value}`).join('\n');
}

function configuration(settings) {
  return {
    clients: [{
      client_id: settings.clientId,
      client_secret: settings.clientSecret,
      redirect_uris: settings.redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      // The library takes the secret from Basic or from the body alike for either method;
      // what it refuses is both at once.
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    findAccount,
    renderError,
    jwks: signingKeys(),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    // Scope claims go into the ID token too, not only to userinfo.
    conformIdTokenClaims: false,
    // PKCE (S256, the only method the library accepts) on every authorization request.
    pkce: { required: () => true },
    // The library's own rule (offline_access, kept only with prompt=consent) or every code grant.
    ...(settings.refreshAlways && {
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    }),
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    cookies: {
      // Signed, and not Secure: the library adds Secure only to cookies set over https.
      keys: [crypto.randomBytes(32).toString('base64url')],
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    ttl: {
      AccessToken: settings.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
    },
  };
}

function watchForShutdown(server) {
  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A pipe on stdin belongs to the harness: its end means the harness is gone. A terminal or
  // /dev/null does not mean that, so only a pipe or socket is watched.
  const stdin = fs.fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
  }
}

const settings = readSettings();
// Listen first, so that port 0 can be used: the issuer is known only once the port is.
const server = http.createServer();
server.on('error', (error) => fail(`cannot listen on 127.0.0.1:${settings.port}: ${error.message}`));
server.listen(settings.port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  let provider;
  try {
    provider = new Provider(issuer, configuration(settings));
  } catch (error) {
    fail(`bad provider configuration: ${error.stack ?? error}`);
  }
  server.on('request', provider.callback());
  provider.on('server_error', (_ctx, error) => process.stderr.write(`oidc server error: ${error.stack ?? error}\n`));
  watchForShutdown(server);
  process.stdout.write(`READY ${issuer}\n`);
});
