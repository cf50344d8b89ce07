// A real OpenID Connect provider (oidc-provider v9) for Shuyun's browser tests, on 127.0.0.1 only.
// Any login name is accepted (dev interactions); the login name becomes sub and preferred_username.
// usage: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [redirectUri, redirectUri.replace(/\/oauth2callback$/, "/")],
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  // Streamlit reads the claims from the ID token.
  conformIdTokenClaims: false,
  claims: { openid: ["sub"], profile: ["name", "preferred_username"], email: ["email"] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, preferred_username: id, name: id, email: `${id}@example.cn` }; } };
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => false },
  cookies: { keys: ["shuyun-e2e-only"] },
  ttl: { Session: 60, Interaction: 600, Grant: 600 },
};
const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
provider.listen(Number(port), "127.0.0.1", () => console.log(`oidc ready on ${port}`));
