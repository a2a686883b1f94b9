// A real OpenID Connect provider (npm oidc-provider 9) for the tests, on
// 127.0.0.1 over plain http. Test-only: anyone may sign in as anyone.
//
//   node provider.mjs --port P --clients FILE
//
// - Issuer http://127.0.0.1:P; discovery at /.well-known/openid-configuration.
// - FILE is a JSON array of oidc-provider client metadata (client_id,
//   client_secret, redirect_uris, grant_types ["authorization_code"],
//   response_types ["code"], token_endpoint_auth_method ...).
// - Sign-in is oidc-provider's devInteractions: GET /interaction/:uid shows a
//   form (hidden prompt=login, login, password) POSTed back to the same path;
//   the password is ignored. A consent form (hidden prompt=consent) follows.
// - The account of login name L: sub = L; email = L if it has an '@', else
//   L@example.test; email_verified unless L starts with "unverified"; name =
//   the part of L before '@'. Email and name go into the ID token too.
// - PKCE (S256) is required of every client.
// - A client entry may carry "x_wrong_audience": "other": the ID token its
//   token endpoint returns is then re-signed with the provider's own key and
//   kid, its aud replaced by "other" (for tests of an audience check). The
//   field is removed before the metadata reaches oidc-provider.
// - One RS256 key, made at start, signs everything; nothing is persisted.
// - Prints "oidc-provider listening on http://127.0.0.1:P" once ready; exits
//   on SIGTERM or SIGINT.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    clients: { type: 'string' },
  },
});
const port = Number(args.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !args.clients) {
  console.error('usage: provider.mjs --port P --clients FILE');
  process.exit(2);
}

// client_id -> the aud its ID tokens are re-signed with.
const wrongAudience = new Map();
const clients = JSON.parse(readFileSync(args.clients, 'utf8')).map((entry) => {
  const { x_wrong_audience: other, ...metadata } = entry;
  if (other !== undefined) wrongAudience.set(metadata.client_id, other);
  return metadata;
});

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const kid = randomBytes(8).toString('hex');
const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };

function emailOf(login) {
  return login.includes('@') ? login : `${login}@example.test`;
}

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: true },
  },
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scopes' claims into the ID token, not only into userinfo.
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: emailOf(id),
          email_verified: !id.startsWith('unverified'),
          name: id.split('@')[0],
        };
      },
    };
  },
});

// x_wrong_audience: once the token endpoint has answered, swap the ID
// token's aud and sign it again with the same key and protected header.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.method !== 'POST' || ctx.path !== '/token' || ctx.status !== 200) return;
  const body = ctx.body;
  if (!body || typeof body !== 'object' || typeof body.id_token !== 'string') return;
  const claims = decodeJwt(body.id_token);
  const clientId = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
  if (!wrongAudience.has(clientId)) return;
  const header = decodeProtectedHeader(body.id_token);
  body.id_token = await new SignJWT({ ...claims, aud: wrongAudience.get(clientId) })
    .setProtectedHeader(header)
    .sign(privateKey);
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
