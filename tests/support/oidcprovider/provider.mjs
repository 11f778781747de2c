// A real OpenID provider (oidc-provider 8) on loopback for hatchway's OIDC tests.
//
// node provider.mjs CONFIG.json
//
// CONFIG: {"port", "clientId", "clientSecret", "redirectUris": [...], "usersFile",
// "refreshTokens": false to give the client no refresh_token grant (then no refresh token
// is issued, offline_access or not)}.
// The dev interactions' login form accepts any login (password ignored); findAccount
// reads usersFile at each call: {"name": {"groups": [...], "disabled": true}, ...}, so a
// test "disables" a user at the provider by rewriting the file. A disabled user is not
// found: its refresh token gets invalid_grant, its access token a 401 at userinfo.
// Prints "ready <issuer>" once it listens.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

function users() {
  try {
    return JSON.parse(readFileSync(config.usersFile, 'utf8'));
  } catch {
    return {};
  }
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.clientId,
    client_secret: config.clientSecret,
    redirect_uris: config.redirectUris,
    grant_types: config.refreshTokens === false
      ? ['authorization_code'] : ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }],
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  cookies: { keys: ['hatchway-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const user = users()[id] || {};
    if (user.disabled) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: user.username || id,
          name: id,
          email: `${id}@example.test`,
          groups: user.groups || [],
        };
      },
    };
  },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
