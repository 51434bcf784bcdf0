// A real OpenID Connect provider (panva's oidc-provider) on loopback, standing in for Authentik's
// OIDC endpoints in the tests. Started by tests/oidc_provider.py; usage:
//
//   node tests/oidc/server.js <config.json>
//
// config.json: {"issuer_path": "/application/o/wopr/", "audience": "<API audience>", "accounts_file": "<path>", "clients": [<client metadata>],
//   "api_clients": ["<client_id>", ...]}
// The accounts file ({"<sub>": {"email", "email_verified", "name", "groups", "amr"}}) is re-read on
// every lookup, so a test can change someone's groups between two sign-ins. devInteractions' login
// form accepts any password: the "login" field is the account's sub. An account's `amr` (RFC 8176
// values, as Authentik's: ["pwd"] for a password, ["pwd", "mfa"] with an MFA stage) is the
// session's authentication methods, carried by the ID tokens of that sign-in.
//
// Routes follow Authentik's layout (authorize, token and userinfo shared under /application/o/,
// the JWKS and end-session under the application's slug, discovery under the issuer), so the
// Django settings derived from OIDC_ISSUER are exercised as they are against Authentik.
// Access tokens for the clients in api_clients are JWTs (RS256, aud = audience) signed with the
// keys served at the JWKS endpoint; the other clients get opaque tokens good for userinfo.
// It listens on a free 127.0.0.1 port, then prints one line: {"base_url": ..., "issuer": ...}
// (issuer = base url + issuer_path, with Authentik's trailing slash).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { interactionPolicy } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuerPath = `/${config.issuer_path.replace(/^\/+|\/+$/g, '')}`;
const slugBase = issuerPath;
const sharedBase = issuerPath.replace(/\/[^/]+$/, '');
const apiClients = new Set(config.api_clients || []);
const API_SCOPE = 'wopr:api';

function loadAccounts() {
  return JSON.parse(readFileSync(config.accounts_file, 'utf8'));
}

async function findAccount(_ctx, sub) {
  const record = loadAccounts()[sub];
  if (!record) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: record.email,
        email_verified: record.email_verified ?? true,
        name: record.name,
        preferred_username: record.email,
        groups: record.groups || [],
      };
    },
  };
}

// Authentik's JWT access tokens carry the user's claims as its ID tokens do; so do these.
async function extraTokenClaims(_ctx, token) {
  if (token.kind !== 'AccessToken' || !token.resourceServer) return undefined;
  const account = await findAccount(undefined, token.accountId);
  if (!account) return undefined;
  const { sub, ...claims } = await account.claims();
  return claims;
}

function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }] };
}

const resourceServer = {
  scope: API_SCOPE,
  audience: config.audience,
  accessTokenFormat: 'jwt',
  accessTokenTTL: 3600,
  jwt: { sign: { alg: 'RS256' } },
};

// As Authentik, which ends a deactivated user's sessions: a session whose account is gone
// needs a new login (so a prompt=none re-check answers login_required).
function interactions() {
  const policy = interactionPolicy.base();
  const { Check } = interactionPolicy;
  const gone = new Check('account_gone', 'the signed-in account no longer exists', (ctx) => (
    ctx.oidc.session.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT
  ));
  policy.get('login').checks.add(gone, 0);
  return { policy };
}

// devInteractions finishes a login with the account id only; add the account's `amr`, as
// Authentik's login flow records how the user authenticated.
function withAccountAmr(provider) {
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, options) => {
    const amr = result.login && loadAccounts()[result.login.accountId]?.amr;
    if (Array.isArray(amr) && amr.length) result.login.amr = amr;
    return finished(req, res, result, options);
  };
}

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: config.clients,
    findAccount,
    extraTokenClaims,
    interactions: interactions(),
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub', 'amr'], // the session's `amr` (as Authentik's) goes into the ID token
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'groups'],
    },
    scopes: ['openid', 'email', 'profile', 'offline_access', API_SCOPE],
    // As Authentik: `groups` comes with the profile scope, and the scopes' claims are in the ID
    // token too.
    conformIdTokenClaims: false,
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => config.audience,
        useGrantedResource: async (ctx) => apiClients.has(ctx.oidc.client.clientId),
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== config.audience) throw new Provider.errors.InvalidTarget();
          return resourceServer;
        },
      },
    },
    routes: {
      authorization: `${sharedBase}/authorize/`,
      token: `${sharedBase}/token/`,
      userinfo: `${sharedBase}/userinfo/`,
      introspection: `${sharedBase}/introspect/`,
      revocation: `${sharedBase}/revoke/`,
      jwks: `${slugBase}/jwks/`,
      end_session: `${slugBase}/end-session/`,
    },
  });
  provider.proxy = false;
  withAccountAmr(provider);
  // A 500 from the provider is a bug in this stand-in or its use: say why, on stderr.
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  return provider;
}

const discoveryPath = `${issuerPath}/.well-known/openid-configuration`;
let handle = (_req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => {
  // Authentik serves discovery under the issuer; oidc-provider under its mount point.
  if (req.url.split('?')[0] === discoveryPath) req.url = '/.well-known/openid-configuration';
  handle(req, res);
});
// The issuer names the port, so the provider is made once the port is known (no race for it).
server.listen(0, '127.0.0.1', () => {
  const baseUrl = `http://127.0.0.1:${server.address().port}`;
  const issuer = `${baseUrl}${issuerPath}/`;
  handle = makeProvider(issuer).callback();
  process.stdout.write(`${JSON.stringify({ base_url: baseUrl, issuer })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
