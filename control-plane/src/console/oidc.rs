//! OpenID Connect sign-in (authorization code with PKCE) through the
//! openidconnect crate, over our reqwest client.
//!
//! [`begin`] discovers the provider and builds the authorization URL with a
//! fresh state, nonce and PKCE verifier; [`finish`] exchanges the code with
//! the verifier and checks the ID token: signature against the provider's
//! keys, issuer, audience (our client id), expiry and nonce.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

/// A provider as configured for a tenant (or for the operators).
#[derive(Clone)]
pub(crate) struct Provider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// A sign-in under way: where to send the browser, and what to keep until
/// it comes back.
pub(crate) struct Started {
    pub authorize_url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OidcError {
    #[error("identity provider configuration: {0}")]
    Config(String),
    #[error("identity provider unreachable or misbehaving: {0}")]
    Provider(String),
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the ID token is not valid for this sign-in: {0}")]
    Token(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpError(String);

/// An HTTP client for provider calls: no redirects (the endpoints come
/// from discovery and are called as given), short timeouts.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("static reqwest configuration")
}

async fn call(client: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let resp = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut out = axum::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    let bytes = resp.bytes().await.map_err(|e| HttpError(e.to_string()))?;
    out.body(bytes.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

async fn metadata(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<CoreProviderMetadata, OidcError> {
    let issuer =
        IssuerUrl::new(issuer.to_string()).map_err(|e| OidcError::Config(e.to_string()))?;
    let http = |req| call(client.clone(), req);
    CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| OidcError::Provider(error_chain(&e)))
}

pub(crate) async fn begin(
    client: &reqwest::Client,
    p: &Provider,
    redirect: &str,
) -> Result<Started, OidcError> {
    let meta = metadata(client, &p.issuer).await?;
    let oidc = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(
        RedirectUrl::new(redirect.to_string()).map_err(|e| OidcError::Config(e.to_string()))?,
    );
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = oidc
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Started {
        authorize_url: url,
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

pub(crate) async fn finish(
    client: &reqwest::Client,
    p: &Provider,
    redirect: &str,
    code: &str,
    nonce: &str,
    pkce_verifier: &str,
) -> Result<Identity, OidcError> {
    let meta = metadata(client, &p.issuer).await?;
    let oidc = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(p.client_id.clone()),
        Some(ClientSecret::new(p.client_secret.clone())),
    )
    .set_redirect_uri(
        RedirectUrl::new(redirect.to_string()).map_err(|e| OidcError::Config(e.to_string()))?,
    );
    let http = |req| call(client.clone(), req);
    let tokens = oidc
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| OidcError::Config(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
        .request_async(&http)
        .await
        .map_err(|e| OidcError::Refused(error_chain(&e)))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| OidcError::Token("the provider sent no ID token".into()))?;
    let claims = id_token
        .claims(&oidc.id_token_verifier(), &Nonce::new(nonce.to_string()))
        .map_err(|e| OidcError::Token(error_chain(&e)))?;
    Ok(Identity {
        subject: claims.subject().as_str().to_string(),
        email: claims.email().map(|e| e.as_str().to_lowercase()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string()),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
