//! Console sign-in through a real OpenID Connect provider (npm's
//! oidc-provider on 127.0.0.1), the session cookie, and the console itself in
//! a real headless Chromium.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// A sign-in that came back: the session cookie's value and its whole
/// `Set-Cookie` header; or the refusal's status and page.
type SignIn = Result<(String, String), (u16, String)>;

struct Browserless {
    /// Keeps the provider's own cookies (its login session) across steps.
    provider: reqwest::Client,
    cp: reqwest::Client,
}

impl Browserless {
    fn new() -> Browserless {
        let no_redirects = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .build()
                .unwrap()
        };
        Browserless {
            provider: no_redirects(),
            cp: no_redirects(),
        }
    }

    /// Starts at the console's sign-in link and walks the provider's login
    /// and consent forms as `login` until the provider sends us back. Returns
    /// the callback URL.
    async fn to_callback(&self, cp: &str, start: &str, login: &str) -> String {
        let r = self.cp.get(format!("{cp}{start}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
        let mut next = location(&r);
        for _ in 0..12 {
            if next.starts_with(cp) {
                return next;
            }
            let r = self.provider.get(&next).send().await.unwrap();
            let here = next.clone();
            if r.status().is_redirection() {
                next = join(&here, &location(&r));
                continue;
            }
            let page = r.text().await.unwrap();
            let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else if page.contains(r#"name="prompt" value="consent""#) {
                vec![("prompt", "consent")]
            } else {
                panic!("unexpected provider page at {here}: {page}");
            };
            let r = self.provider.post(&here).form(&form).send().await.unwrap();
            assert!(r.status().is_redirection(), "{}", r.status());
            next = join(&here, &location(&r));
        }
        panic!("the provider never sent us back");
    }

    async fn callback(&self, url: &str) -> SignIn {
        let r = self.cp.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let set_cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        match (status, set_cookie) {
            (303, Some(c)) => {
                let value = c
                    .split(';')
                    .next()
                    .unwrap()
                    .strip_prefix("attache_session=")
                    .unwrap()
                    .to_string();
                Ok((value, c))
            }
            (s, _) => Err((s, body)),
        }
    }

    async fn sign_in(&self, cp: &str, start: &str, login: &str) -> SignIn {
        let cb = self.to_callback(cp, start, login).await;
        self.callback(&cb).await
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no location ({})", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

fn join(base: &str, loc: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string()
}

/// A GraphQL request with the session cookie, as the console sends it.
async fn as_session(cp: &str, cookie: &str, query: &str, csrf: bool) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{cp}/graphql"))
        .header("cookie", format!("attache_session={cookie}"))
        .json(&json!({ "query": query }));
    if csrf {
        req = req.header("x-attache-console", "1");
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn role_of(cp: &str, cookie: &str) -> Option<String> {
    let (status, body) = as_session(cp, cookie, "{ me { role operator } }", true).await;
    (status == 200).then(|| {
        body["data"]["me"]["role"]
            .as_str()
            .unwrap_or("OPERATOR")
            .to_string()
    })
}

async fn set_sso(owner: &Api, issuer: &str, client: &str, domains: Value) {
    owner
        .gql(
            "mutation($i: IdentityProviderInput!) { setIdentityProvider(input: $i) }",
            json!({ "i": { "issuer": issuer, "clientId": client, "clientSecret": format!("{client}-secret"), "allowedDomains": domains } }),
        )
        .await;
}

/// Tenant `acme`, signing in through `acme-console` (domain `acme.test`
/// joins as viewer), with `email` invited as `role`; its owner's API.
async fn acme(cluster: &Cluster, idp: &OidcProvider, email: &str, role: &str) -> Api {
    let owner = cluster.tenant("acme").await;
    set_sso(&owner, &idp.issuer, "acme-console", json!(["acme.test"])).await;
    owner
        .gql(
            "mutation($e: String!, $r: Role!) { inviteMember(email: $e, role: $r) { id } }",
            json!({ "e": email, "r": role }),
        )
        .await;
    owner
}

fn client(id: &str, cp: &str) -> Value {
    json!({
        "client_id": id,
        "client_secret": format!("{id}-secret"),
        "redirect_uris": [format!("{cp}/console/callback")],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_a_real_provider() {
    let cluster = Cluster::start().await;
    let short = Cluster::start_with(Options {
        tweak: Some(|c| c.session_ttl = Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let cp = cluster.http.clone();
    let mut evil = client("evil-console", &cp);
    evil["x_wrong_audience"] = json!("someone-else");
    let Some(idp) = OidcProvider::start(json!([
        client("acme-console", &cp),
        evil,
        client("ops-console", &cp),
        client("short-console", &short.http),
    ])) else {
        return;
    };

    let owner = acme(&cluster, &idp, "Alice@Example.org", "ADMIN").await;

    // An invited address signs in with the invited role; the cookie is
    // HttpOnly, SameSite, Secure (loopback counts as a secure origin).
    let alice = Browserless::new();
    let cb = alice
        .to_callback(&cp, "/console/login?tenant=acme", "alice@example.org")
        .await;
    let (cookie, header) = alice.callback(&cb).await.expect("alice signs in");
    for part in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(header.contains(part), "{part} in {header}");
    }
    assert_eq!(role_of(&cp, &cookie).await.as_deref(), Some("ADMIN"));
    // The same callback again (a replayed state) is refused.
    let replay = alice.callback(&cb).await;
    assert!(
        matches!(&replay, Err((400, page)) if page.contains("already used")),
        "{replay:?}"
    );
    // A state this control plane never issued, too.
    let forged = cb.replace("state=", "state=x");
    assert!(matches!(alice.callback(&forged).await, Err((400, _))));
    // The cookie alone does not make a request that changes things: the
    // console's header must come with it.
    let (status, _) = as_session(&cp, &cookie, "{ me { role } }", false).await;
    assert_eq!(status, 401);

    // A verified address in an allowed domain joins as a viewer.
    let bob = Browserless::new();
    let (bob_cookie, _) = bob
        .sign_in(&cp, "/console/login?tenant=acme", "bob@acme.test")
        .await
        .expect("bob joins by domain");
    assert_eq!(role_of(&cp, &bob_cookie).await.as_deref(), Some("VIEWER"));
    // Neither a stranger nor an unverified address of the domain gets in.
    for login in ["carol@elsewhere.test", "unverified-dave@acme.test"] {
        let r = Browserless::new()
            .sign_in(&cp, "/console/login?tenant=acme", login)
            .await;
        assert!(matches!(r, Err((403, _))), "{login}: {r:?}");
    }

    // An ID token signed by the same provider for another audience is
    // refused.
    let evil_owner = cluster.tenant("evilcorp").await;
    set_sso(
        &evil_owner,
        &idp.issuer,
        "evil-console",
        json!(["evil.test"]),
    )
    .await;
    let r = Browserless::new()
        .sign_in(&cp, "/console/login?tenant=evilcorp", "mallory@evil.test")
        .await;
    assert!(matches!(r, Err((403, _))), "wrong audience: {r:?}");

    // Alice issues a key from her session; removing her stops her session
    // and that key at once. Bob signs out; his cookie is dead too.
    let (_, created) = as_session(
        &cp,
        &cookie,
        "mutation { createApiKey(name: \"alice-ci\", role: DEVELOPER, expiresInDays: 7) { secret apiKey { createdBy } } }",
        true,
    )
    .await;
    let alice_key = Api::new(
        &cp,
        created["data"]["createApiKey"]["secret"].as_str().unwrap(),
    );
    assert_eq!(
        created["data"]["createApiKey"]["apiKey"]["createdBy"],
        "user:alice@example.org"
    );
    alice_key
        .gql("{ bots { edges { node { id } } } }", json!({}))
        .await;
    let members = owner.gql("{ members { id email } }", json!({})).await;
    let alice_id = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "alice@example.org")
        .unwrap()["id"]
        .clone();
    owner
        .gql(
            "mutation($id: ID!) { removeMember(id: $id) }",
            json!({ "id": alice_id }),
        )
        .await;
    assert_eq!(
        role_of(&cp, &cookie).await,
        None,
        "a removed member's session is refused"
    );
    let (status, _) = alice_key
        .raw("{ bots { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(status, 401, "a removed member's key is refused");
    let out = reqwest::Client::new()
        .post(format!("{cp}/console/logout"))
        .header("cookie", format!("attache_session={bob_cookie}"))
        .header("x-attache-console", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(role_of(&cp, &bob_cookie).await, None, "signed out");

    // The operator signs in with the platform's provider.
    cluster
        .admin
        .add_operator("ops@platform.test")
        .await
        .unwrap();
    let secret = "ops-console-secret";
    cluster
        .admin
        .set_operator_sso(&idp.issuer, "ops-console", secret)
        .await
        .unwrap();
    let (ops, _) = Browserless::new()
        .sign_in(&cp, "/console/login?operator=1", "ops@platform.test")
        .await
        .expect("the operator signs in");
    let (_, tenants) = as_session(&cp, &ops, "{ me { operator } tenants { name } }", true).await;
    assert_eq!(tenants["data"]["me"]["operator"], true, "{tenants}");
    assert_eq!(tenants["data"]["tenants"].as_array().unwrap().len(), 2);
    let r = Browserless::new()
        .sign_in(&cp, "/console/login?operator=1", "bob@acme.test")
        .await;
    assert!(matches!(r, Err((403, _))), "not an operator: {r:?}");

    // An expired session is refused.
    let short_owner = short.tenant("brief").await;
    set_sso(
        &short_owner,
        &idp.issuer,
        "short-console",
        json!(["brief.test"]),
    )
    .await;
    let (brief, _) = Browserless::new()
        .sign_in(
            &short.http,
            "/console/login?tenant=brief",
            "erin@brief.test",
        )
        .await
        .expect("erin signs in");
    assert_eq!(
        role_of(&short.http, &brief).await.as_deref(),
        Some("VIEWER")
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(role_of(&short.http, &brief).await, None, "expired");

    // Every sign-in, good or refused, is in the trail, and the chain holds.
    let trail = owner
        .gql(
            "{ auditLog(first: 200) { actor action outcome } }",
            json!({}),
        )
        .await;
    let signins: Vec<(String, String)> = trail["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signIn")
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("user:alice@example.org", "ok"),
        ("user:bob@acme.test", "ok"),
        ("user:carol@elsewhere.test", "NOT_A_MEMBER"),
        ("subject:unverified-dave@acme.test", "EMAIL_NOT_VERIFIED"),
    ] {
        assert!(
            signins.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {signins:?}"
        );
    }
    let evil_trail = evil_owner
        .gql("{ auditLog { action outcome } }", json!({}))
        .await;
    assert!(
        evil_trail.to_string().contains("INVALID_ID_TOKEN"),
        "{evil_trail}"
    );
    assert!(matches!(
        cluster.admin.verify_audit().await.unwrap(),
        attache_control_plane::AuditVerdict::Intact { .. }
    ));
}

fn screenshot_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Chrome {
    browser: chromiumoxide::Browser,
    _handler: tokio::task::JoinHandle<()>,
    _profile: PathBuf,
}

async fn chrome() -> Chrome {
    use chromiumoxide::browser::{Browser, BrowserConfig};
    use futures::StreamExt;
    let profile = temp_dir("console-chrome");
    let cfg = BrowserConfig::builder()
        .chrome_executable(chromium())
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(&profile)
        .window_size(1280, 900)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(cfg).await.expect("chromium starts");
    let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
    Chrome {
        browser,
        _handler: handler,
        _profile: profile,
    }
}

async fn shot(page: &chromiumoxide::Page, name: &str) {
    use chromiumoxide::page::ScreenshotParams;
    let path = screenshot_dir().join(format!("{name}.png"));
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
        .await
        .unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 5_000, "{name}.png is only {len} bytes");
}

/// Switches the console's page in place (a hash change; no reload).
async fn show(page: &chromiumoxide::Page, hash: &str) {
    let js = format!(
        "location.hash = {}; true",
        serde_json::to_string(hash).unwrap()
    );
    page.evaluate(js.as_str()).await.unwrap();
}

async fn set_input(page: &chromiumoxide::Page, selector: &str, value: &str) {
    let js = format!(
        "(() => {{ const e = document.querySelector({sel}); e.value = {val}; e.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()",
        sel = serde_json::to_string(selector).unwrap(),
        val = serde_json::to_string(value).unwrap()
    );
    page.evaluate(js.as_str()).await.unwrap();
}

async fn click(page: &chromiumoxide::Page, selector: &str) {
    let js = format!(
        "(() => {{ document.querySelector({}).click(); return true; }})()",
        serde_json::to_string(selector).unwrap()
    );
    page.evaluate(js.as_str()).await.unwrap();
}

/// Signs in through the console's own sign-in page and the provider's
/// forms, in the browser.
async fn browser_sign_in(page: &chromiumoxide::Page, cp: &str, tenant: Option<&str>, login: &str) {
    page.goto(format!("{cp}/console/")).await.unwrap();
    match tenant {
        Some(t) => {
            wait_for(
                page,
                "!!document.querySelector('#signin')",
                Duration::from_secs(10),
            )
            .await;
            set_input(page, "#signin input[name=tenant]", t).await;
            page.evaluate("document.querySelector('#signin').submit()")
                .await
                .unwrap();
        }
        None => {
            page.goto(format!("{cp}/console/login?operator=1"))
                .await
                .unwrap();
        }
    }
    wait_for(
        page,
        "!!document.querySelector('input[name=login]')",
        Duration::from_secs(10),
    )
    .await;
    set_input(page, "input[name=login]", login).await;
    page.evaluate("document.querySelector('form').submit()")
        .await
        .unwrap();
    // Consent, on the first sign-in of this client.
    wait_for(
        page,
        "location.pathname.startsWith('/console') || !!document.querySelector('input[name=prompt][value=consent]')",
        Duration::from_secs(10),
    )
    .await;
    let at_consent = page
        .evaluate("!!document.querySelector('input[name=prompt][value=consent]')")
        .await
        .unwrap()
        .into_value::<bool>()
        .unwrap();
    if at_consent {
        page.evaluate("document.querySelector('form').submit()")
            .await
            .unwrap();
    }
    wait_for(
        page,
        "location.pathname.startsWith('/console') && !!document.querySelector('#who') && document.querySelector('#who').textContent.length > 0",
        Duration::from_secs(15),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let mut cluster = Cluster::start().await;
    let cp = cluster.http.clone();
    let Some(idp) = OidcProvider::start(json!([
        client("acme-console", &cp),
        client("ops-console", &cp)
    ])) else {
        return;
    };
    let owner = acme(&cluster, &idp, "alice@acme.test", "OWNER").await;
    let tenant_id = owner.gql("{ viewer { tenant { id } } }", json!({})).await["viewer"]["tenant"]
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    cluster
        .admin
        .add_member(
            &tenant_id,
            "bob@acme.test",
            attache_tenant_policy::Role::Viewer,
        )
        .await
        .unwrap();
    let ci = owner
        .gql(
            "mutation { createApiKey(name: \"ci-key\", role: DEVELOPER) { secret } }",
            json!({}),
        )
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    owner
        .gql("mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/hook\" }) { secret } }", json!({}))
        .await;

    let alice_chrome = chrome().await;
    let page = alice_chrome.browser.new_page("about:blank").await.unwrap();
    browser_sign_in(&page, &cp, Some("acme"), "alice@acme.test").await;
    // The cookie is out of reach of scripts.
    let visible = page
        .evaluate("document.cookie")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap();
    assert!(!visible.contains("attache_session"), "{visible}");

    // A bot's status changes on the page as it happens.
    let meeting = cluster.meeting("console-live", "");
    let bot = owner.create_bot(&meeting, "Live Bot").await;
    show(&page, "bots").await;
    let status = format!("document.querySelector('[data-testid=\"status-{bot}\"]')");
    wait_for(&page, &format!("!!{status}"), Duration::from_secs(10)).await;
    shot(&page, "bots-queued").await;
    cluster.add_worker(1).await;
    wait_for(
        &page,
        &format!("{status}.textContent === 'IN_CALL'"),
        Duration::from_secs(60),
    )
    .await;
    shot(&page, "bots-in-call").await;
    cluster.host("console-live", "end", None).await;
    wait_for(
        &page,
        &format!("{status}.textContent === 'ENDED'"),
        Duration::from_secs(30),
    )
    .await;
    show(&page, &format!("bot/{bot}")).await;
    wait_for(
        &page,
        "!!document.querySelector('[data-testid=transcript]')",
        Duration::from_secs(10),
    )
    .await;
    shot(&page, "bot-transcript").await;

    // Invite a member.
    show(&page, "members").await;
    wait_for(
        &page,
        "!!document.querySelector('#invite')",
        Duration::from_secs(10),
    )
    .await;
    set_input(&page, "#invite input[name=email]", "carol@acme.test").await;
    set_input(&page, "#invite select[name=role]", "DEVELOPER").await;
    click(&page, "#invite button").await;
    wait_for(
        &page,
        "!!document.querySelector('[data-invite=\"carol@acme.test\"]')",
        Duration::from_secs(10),
    )
    .await;
    let invites = owner.gql("{ invitations { email role } }", json!({})).await;
    assert!(invites.to_string().contains("carol@acme.test"), "{invites}");
    // Change a role.
    set_input(&page, "[data-testid=\"role-bob@acme.test\"]", "DEVELOPER").await;
    wait_for(
        &page,
        "document.querySelector('#flash').textContent.includes('Role of bob@acme.test changed')",
        Duration::from_secs(10),
    )
    .await;
    let members = owner.gql("{ members { email role } }", json!({})).await;
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == "bob@acme.test" && m["role"] == "DEVELOPER"),
        "{members}"
    );
    shot(&page, "members").await;

    // Revoke a key; it stops working.
    Api::new(&cp, &ci)
        .gql("{ bots { edges { node { id } } } }", json!({}))
        .await;
    show(&page, "keys").await;
    wait_for(
        &page,
        "!!document.querySelector('[data-key=\"ci-key\"] button')",
        Duration::from_secs(10),
    )
    .await;
    page.evaluate("window.confirm = () => true").await.unwrap();
    click(&page, "[data-key=\"ci-key\"] button").await;
    wait_for(
        &page,
        "document.querySelector('[data-testid=\"key-state-ci-key\"]').textContent !== 'active'",
        Duration::from_secs(10),
    )
    .await;
    let (status, _) = Api::new(&cp, &ci)
        .raw("{ bots { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(status, 401);
    shot(&page, "api-keys").await;

    for (hash, name, ready) in [
        ("webhooks", "webhooks", "[data-testid=webhooks]"),
        ("settings", "settings", "#sso"),
        ("audit", "audit-log", "[data-testid=audit]"),
    ] {
        show(&page, hash).await;
        wait_for(
            &page,
            &format!("!!document.querySelector('{ready}')"),
            Duration::from_secs(10),
        )
        .await;
        shot(&page, name).await;
    }
    let audit_text = page
        .evaluate("document.querySelector('[data-testid=audit]').textContent")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap();
    for action in ["inviteMember", "setMemberRole", "revokeApiKey", "signIn"] {
        assert!(audit_text.contains(action), "{action} in the audit page");
    }

    // Governance: retention per class, and an erasure followed to its
    // certificate, which downloads.
    show(&page, "governance").await;
    wait_for(
        &page,
        "!!document.querySelector('[data-testid=retention-days-TRANSCRIPTS]') && !!document.querySelector('#erase-bot')",
        Duration::from_secs(10),
    )
    .await;
    set_input(&page, "#erase-bot input[name=bot]", &bot).await;
    page.evaluate("window.confirm = () => true").await.unwrap();
    click(&page, "#erase-bot button").await;
    wait_for(
        &page,
        "[...document.querySelectorAll('[data-testid^=job-status-]')].some(s => s.textContent === 'DONE') && !!document.querySelector('[data-testid^=certificate-]')",
        Duration::from_secs(30),
    )
    .await;
    let href = page
        .evaluate("document.querySelector('[data-testid^=certificate-]').href")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap();
    assert!(href.starts_with("blob:"), "{href}");
    let download = page
        .evaluate("document.querySelector('[data-testid^=certificate-]').getAttribute('download')")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap();
    let jobs = owner
        .gql("{ erasureJobs { id status certificate } }", json!({}))
        .await;
    let job = &jobs["erasureJobs"][0];
    assert_eq!(
        download,
        format!("erasure-{}.json", job["id"].as_str().unwrap())
    );
    let cert = job["certificate"].as_str().unwrap().to_string();
    let jwks: Value = reqwest::get(format!("{cp}/.well-known/attache-erasure-key"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = attache_control_plane::verify_erasure_certificate(&cert, &jwks).unwrap();
    assert_eq!(payload["subject"]["id"], bot.as_str(), "{payload:#}");
    assert_eq!(
        owner
            .error_code(
                "query($id: ID!) { bot(id: $id) { id } }",
                json!({ "id": bot })
            )
            .await,
        "NOT_FOUND"
    );
    shot(&page, "governance").await;

    // The operator's pages, in a browser of their own.
    cluster
        .admin
        .add_operator("ops@platform.test")
        .await
        .unwrap();
    cluster
        .admin
        .set_operator_sso(&idp.issuer, "ops-console", "ops-console-secret")
        .await
        .unwrap();
    let ops_chrome = chrome().await;
    let ops = ops_chrome.browser.new_page("about:blank").await.unwrap();
    browser_sign_in(&ops, &cp, None, "ops@platform.test").await;
    show(&ops, "tenants").await;
    wait_for(&ops, "!!document.querySelector('[data-testid=tenants]') && document.querySelector('[data-testid=tenants]').textContent.includes('acme')", Duration::from_secs(10)).await;
    shot(&ops, "operator-tenants").await;
    show(&ops, "fleet").await;
    wait_for(
        &ops,
        "!!document.querySelector('[data-testid=region-local]')",
        Duration::from_secs(10),
    )
    .await;
    shot(&ops, "operator-fleet").await;
    eprintln!("console screenshots: {}", screenshot_dir().display());
}
