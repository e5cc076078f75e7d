// A minimal OpenID provider (npm `oidc-provider`) for the mod_auth_openidc row of benches/run:
// one confidential client, the library's development login and consent pages, any user name.
// Usage: node op.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI   (listens on 127.0.0.1 only)
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!redirectUri) {
  console.error('usage: node op.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@bench.example`, email_verified: true, name: `Bench ${id}`, preferred_username: id };
      },
    };
  },
  cookies: { keys: ['benches-op-cookie-key-0123456789abcdef'] },
  features: { devInteractions: { enabled: true } },
  ttl: { Session: 3600, Grant: 3600, AccessToken: 3600, IdToken: 3600 },
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
