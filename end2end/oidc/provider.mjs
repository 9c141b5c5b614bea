// A real OpenID provider for the single sign-on tests: the OpenID-certified `oidc-provider`
// package on loopback, with the clients and people the test gives it (a JSON file named by the
// first argument), its own sign-in form with real passwords, and a few test controls:
//
//   POST /__test/client   {client metadata}: one more client (its redirect URI is known late)
//   POST /__test/groups   {"username": …, "groups": […]}: someone's groups change at the IdP
//   POST /__test/rotate   a new signing key first; the old ones still published
//   POST /__test/retire   only the newest key published (the others kept for `old_key` faults)
//   POST /__test/fault    {"kind": …}: the next token response's id_token is altered —
//                         tamper (claims changed, signature kept), none (unsigned), aud, iss,
//                         expired, nonce, skew (each re-signed with the real key), old_key (signed
//                         with a retired key)
//
// Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it listens.

import http from "node:http";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import Provider from "oidc-provider";
import * as jose from "jose";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const people = new Map(config.users.map((u) => [u.username, u]));
const bySub = new Map(config.users.map((u) => [u.sub, u]));

let keys = [await newKey()]; // published, signing with the first
let retired = [];
let fault = null;
let provider;
let issuer;

async function newKey() {
  const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: "RS256", use: "sig" };
}

function build() {
  provider = new Provider(issuer, {
    clients: config.clients ?? [],
    jwks: { keys },
    cookies: { keys: ["clawloops-test-cookie-key"] },
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name", "preferred_username"],
      groups: ["groups"],
    },
    // With `id_token_claims`, the claims go into the id token too (most providers do that);
    // otherwise only the userinfo endpoint has them (the spec's default).
    conformIdTokenClaims: !config.id_token_claims,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => {
      const person = bySub.get(sub);
      if (!person) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          email: person.email,
          email_verified: person.email_verified ?? true,
          name: person.name ?? person.username,
          preferred_username: person.username,
          groups: person.groups ?? [],
        }),
      };
    },
    pkce: { required: () => true },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  });
  provider.proxy = false;
}

const page = (title, body) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head>` +
  `<body><h1>${title}</h1>${body}</body></html>`;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginForm(uid, error) {
  return page(
    "Test identity provider: sign in",
    (error ? `<p role="alert">${escape(error)}</p>` : "") +
      `<form method="post" action="/interaction/${uid}/login">` +
      `<label>Login <input name="login" autocomplete="username"></label>` +
      `<label>Secret <input name="secret" type="password"></label>` +
      `<button type="submit">Continue</button></form>`,
  );
}

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function send(res, status, type, text) {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(text);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, "text/plain", "interaction mismatch");
  if (action !== "login" || req.method !== "POST") {
    return send(res, 200, "text/html", loginForm(uid));
  }
  const form = new URLSearchParams(await body(req));
  const person = people.get(form.get("login") ?? "");
  if (!person || person.password !== form.get("secret")) {
    return send(res, 200, "text/html", loginForm(uid, "Wrong login or secret."));
  }
  const grant = new provider.Grant({ accountId: person.sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: person.sub }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

// The id token as the fault asks.
async function alter(idToken, kind) {
  const [header, payload] = idToken.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  const now = Math.floor(Date.now() / 1000);
  const sign = async (changed, key = keys[0]) =>
    new jose.SignJWT(changed)
      .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
      .sign(await jose.importJWK(key, "RS256"));
  switch (kind) {
    case "tamper": {
      const changed = Buffer.from(JSON.stringify({ ...claims, sub: "someone-else" })).toString("base64url");
      return `${header}.${changed}.${idToken.split(".")[2]}`;
    }
    case "none": {
      const h = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
      return `${h}.${payload}.`;
    }
    case "aud":
      return sign({ ...claims, aud: "another-client" });
    case "iss":
      return sign({ ...claims, iss: "http://127.0.0.1:9/not-the-issuer" });
    case "expired":
      return sign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case "skew":
      // Clocks 10 s apart: issued "in the future", expired "just now" — within the tolerance.
      return sign({ ...claims, iat: now + 10, exp: now - 10 });
    case "nonce":
      return sign({ ...claims, nonce: "not-the-nonce" });
    case "old_key":
      return sign(claims, retired[0]);
    default:
      throw new Error(`unknown fault ${kind}`);
  }
}

// Alters the id token of this token response when a fault is armed.
function faulty(res) {
  const kind = fault;
  fault = null;
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    let text;
    try {
      text = JSON.parse(String(chunk));
    } catch {
      return end(chunk, ...rest);
    }
    if (!text.id_token) return end(chunk, ...rest);
    alter(text.id_token, kind).then((altered) => {
      const out = JSON.stringify({ ...text, id_token: altered });
      if (!res.headersSent) res.setHeader("content-length", Buffer.byteLength(out));
      end(out);
    });
    return res;
  };
}

async function control(req, res, what) {
  if (what === "client") {
    config.clients = [...(config.clients ?? []), JSON.parse(await body(req))];
    build();
  } else if (what === "groups") {
    const change = JSON.parse(await body(req));
    const person = people.get(change.username);
    if (!person) return send(res, 404, "text/plain", "no such person");
    person.groups = change.groups;
  } else if (what === "rotate") {
    keys = [await newKey(), ...keys];
    build();
  } else if (what === "retire") {
    retired = [...keys.slice(1), ...retired];
    keys = keys.slice(0, 1);
    build();
  } else if (what === "fault") {
    fault = JSON.parse(await body(req)).kind;
  } else {
    return send(res, 404, "text/plain", "no such control");
  }
  send(res, 200, "application/json", JSON.stringify({ kids: keys.map((k) => k.kid), fault }));
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    // The sign-in form's page asks for one; answering keeps browser consoles clean.
    if (url.pathname === "/favicon.ico") return send(res, 204, "image/x-icon", "");
    const test = url.pathname.match(/^\/__test\/(\w+)$/);
    if (test && req.method === "POST") return await control(req, res, test[1]);
    const step = url.pathname.match(/^\/interaction\/([\w-]+)(?:\/(\w+))?$/);
    if (step) return await interaction(req, res, step[1], step[2]);
    if (fault && url.pathname === "/token" && req.method === "POST") faulty(res);
    return provider.callback()(req, res);
  } catch (err) {
    if (!res.headersSent) send(res, 500, "text/plain", String(err?.message ?? err));
  }
});

server.listen(config.port ?? 0, "127.0.0.1", () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  build();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
