//! The authorization matrix: every GraphQL query, mutation and
//! subscription, and every console route behind sign-in, run as every role
//! (owner, admin, developer, viewer, auditor, and the platform operator), in
//! its own tenant and against another tenant's objects. The table below says
//! who may; the test fails for any operation of the schema without a row.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use attache_tenant_policy::Role;
use futures::StreamExt;
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Owner,
    Admin,
    Developer,
    Viewer,
    Auditor,
    Operator,
}

use Who::*;

const EVERY_ROLE: [Who; 6] = [Owner, Admin, Developer, Viewer, Auditor, Operator];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Mutation,
    Subscription,
    Route,
}

/// One row: the operation, how to call it, and who may (in their own
/// tenant; the operator's own domain is the platform).
struct Row {
    name: &'static str,
    kind: Kind,
    doc: &'static str,
    allowed: &'static [Who],
}

const READERS: &[Who] = &[Owner, Admin, Developer, Viewer];
const MEMBERS_READERS: &[Who] = &[Owner, Admin, Developer, Viewer, Auditor];
const BUILDERS: &[Who] = &[Owner, Admin, Developer];
const ADMINS: &[Who] = &[Owner, Admin];

const TABLE: &[Row] = &[
    // ---- queries
    Row {
        name: "viewer",
        kind: Kind::Query,
        doc: "{ viewer { role tenant { id name } } }",
        allowed: MEMBERS_READERS,
    },
    Row {
        name: "me",
        kind: Kind::Query,
        doc: "{ me { actor role operator tenantId permissions } }",
        allowed: &EVERY_ROLE,
    },
    Row {
        name: "bot",
        kind: Kind::Query,
        doc: "query($bot: ID!) { bot(id: $bot) { id botName meetingUrl } }",
        allowed: READERS,
    },
    Row {
        name: "bots",
        kind: Kind::Query,
        doc: "{ bots { edges { node { id botName meetingUrl } } } }",
        allowed: READERS,
    },
    Row {
        name: "node",
        kind: Kind::Query,
        doc: "query($bot: ID!) { node(id: $bot) { id ... on Bot { botName meetingUrl } } }",
        allowed: READERS,
    },
    Row {
        name: "nodes",
        kind: Kind::Query,
        // A member: what every tenant role but none other may read.
        doc: "query($member: ID!) { nodes(ids: [$member]) { id ... on Member { email role } } }",
        allowed: MEMBERS_READERS,
    },
    Row {
        name: "webhookEndpoints",
        kind: Kind::Query,
        doc: "{ webhookEndpoints { id url } }",
        allowed: READERS,
    },
    Row {
        name: "notices",
        kind: Kind::Query,
        doc: "{ notices { kind message } }",
        allowed: READERS,
    },
    Row {
        name: "transcriptionSettings",
        kind: Kind::Query,
        doc: "{ transcriptionSettings { provider } }",
        allowed: ADMINS,
    },
    Row {
        name: "members",
        kind: Kind::Query,
        doc: "{ members { id email role } }",
        allowed: MEMBERS_READERS,
    },
    Row {
        name: "invitations",
        kind: Kind::Query,
        doc: "{ invitations { id email role } }",
        allowed: MEMBERS_READERS,
    },
    Row {
        name: "apiKeys",
        kind: Kind::Query,
        doc: "{ apiKeys { id name role } }",
        allowed: ADMINS,
    },
    Row {
        name: "auditLog",
        kind: Kind::Query,
        doc: "{ auditLog(first: 500) { seq actor action target outcome } }",
        allowed: &[Owner, Admin, Auditor, Operator],
    },
    Row {
        name: "identityProvider",
        kind: Kind::Query,
        doc: "{ identityProvider { issuer clientId } }",
        allowed: ADMINS,
    },
    Row {
        name: "policyOverrides",
        kind: Kind::Query,
        doc: "{ policyOverrides { role action effect } }",
        allowed: &[Owner],
    },
    Row {
        name: "tenantSettings",
        kind: Kind::Query,
        doc: "{ tenantSettings { retentionDays } }",
        allowed: ADMINS,
    },
    Row {
        name: "retentionPolicy",
        kind: Kind::Query,
        doc: "{ retentionPolicy { class retentionDays source } }",
        allowed: ADMINS,
    },
    Row {
        name: "legalHolds",
        kind: Kind::Query,
        doc: "{ legalHolds(includeReleased: true) { id botId reason active } }",
        allowed: ADMINS,
    },
    Row {
        name: "tenants",
        kind: Kind::Query,
        doc: "{ tenants { id name } }",
        allowed: &[Operator],
    },
    Row {
        name: "regions",
        kind: Kind::Query,
        doc: "{ regions { name workers { id } } }",
        allowed: &[Operator],
    },
    // ---- mutations
    Row {
        name: "createBot",
        kind: Kind::Mutation,
        doc: "mutation($url: String!) { createBot(input: { meetingUrl: $url }) { id } }",
        allowed: BUILDERS,
    },
    Row {
        name: "leaveBot",
        kind: Kind::Mutation,
        doc: "mutation($bot: ID!) { leaveBot(id: $bot) { id status } }",
        allowed: BUILDERS,
    },
    Row {
        name: "setTranscriptionSettings",
        kind: Kind::Mutation,
        doc: "mutation { setTranscriptionSettings(input: { provider: NONE }) { provider } }",
        allowed: ADMINS,
    },
    Row {
        name: "createWebhookEndpoint",
        kind: Kind::Mutation,
        doc: "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/hook\" }) { endpoint { id } } }",
        allowed: BUILDERS,
    },
    Row {
        name: "deleteWebhookEndpoint",
        kind: Kind::Mutation,
        doc: "mutation($endpoint: ID!) { deleteWebhookEndpoint(id: $endpoint) }",
        allowed: BUILDERS,
    },
    Row {
        name: "enableWebhookEndpoint",
        kind: Kind::Mutation,
        doc: "mutation($endpoint: ID!) { enableWebhookEndpoint(id: $endpoint) { id enabled } }",
        allowed: BUILDERS,
    },
    Row {
        name: "inviteMember",
        kind: Kind::Mutation,
        doc: "mutation($email: String!) { inviteMember(email: $email, role: VIEWER) { id } }",
        allowed: ADMINS,
    },
    Row {
        name: "revokeInvitation",
        kind: Kind::Mutation,
        doc: "mutation($invitation: ID!) { revokeInvitation(id: $invitation) }",
        allowed: ADMINS,
    },
    Row {
        name: "setMemberRole",
        kind: Kind::Mutation,
        doc: "mutation($member: ID!) { setMemberRole(id: $member, role: VIEWER) { id role } }",
        allowed: ADMINS,
    },
    Row {
        name: "removeMember",
        kind: Kind::Mutation,
        doc: "mutation($member: ID!) { removeMember(id: $member) }",
        allowed: ADMINS,
    },
    Row {
        name: "createApiKey",
        kind: Kind::Mutation,
        doc: "mutation { createApiKey(name: \"ci\", role: VIEWER, expiresInDays: 30) { apiKey { id } secret } }",
        allowed: ADMINS,
    },
    Row {
        name: "revokeApiKey",
        kind: Kind::Mutation,
        doc: "mutation($key: ID!) { revokeApiKey(id: $key) { id active } }",
        allowed: ADMINS,
    },
    Row {
        name: "setIdentityProvider",
        kind: Kind::Mutation,
        doc: "mutation { setIdentityProvider(input: { issuer: \"http://127.0.0.1:9\", clientId: \"c\", clientSecret: \"s\" }) }",
        allowed: ADMINS,
    },
    Row {
        name: "deleteIdentityProvider",
        kind: Kind::Mutation,
        doc: "mutation { deleteIdentityProvider }",
        allowed: ADMINS,
    },
    Row {
        name: "setPolicyOverride",
        kind: Kind::Mutation,
        doc: "mutation { setPolicyOverride(role: AUDITOR, action: READ_WEBHOOKS, effect: ALLOW) { effect } }",
        allowed: &[Owner],
    },
    Row {
        name: "deletePolicyOverride",
        kind: Kind::Mutation,
        doc: "mutation { deletePolicyOverride(role: AUDITOR, action: READ_WEBHOOKS) }",
        allowed: &[Owner],
    },
    Row {
        name: "setRetention",
        kind: Kind::Mutation,
        doc: "mutation { setRetention(days: 30) { retentionDays } }",
        allowed: ADMINS,
    },
    Row {
        name: "setRetentionPolicy",
        kind: Kind::Mutation,
        doc: "mutation { setRetentionPolicy(input: { class: TRANSCRIPTS, retentionDays: 30 }) { class retentionDays source } }",
        allowed: ADMINS,
    },
    Row {
        name: "setLegalHold",
        kind: Kind::Mutation,
        doc: "mutation($bot: ID!) { setLegalHold(input: { botId: $bot, reason: \"matrix\" }) { id botId } }",
        allowed: ADMINS,
    },
    Row {
        name: "releaseLegalHold",
        kind: Kind::Mutation,
        doc: "mutation($hold: ID!) { releaseLegalHold(id: $hold) { id active } }",
        allowed: ADMINS,
    },
    Row {
        name: "eraseBot",
        kind: Kind::Mutation,
        doc: "mutation($unheldBot: ID!) { eraseBot(id: $unheldBot) { id status subject } }",
        allowed: ADMINS,
    },
    Row {
        name: "eraseParticipant",
        kind: Kind::Mutation,
        doc: "mutation { eraseParticipant(name: \"Matrix Person\") { id status subject } }",
        allowed: ADMINS,
    },
    Row {
        name: "eraseTenant",
        kind: Kind::Mutation,
        doc: "mutation($doomedTenant: ID!) { eraseTenant(id: $doomedTenant) { id status subject } }",
        allowed: &[Operator],
    },
    Row {
        name: "drainWorker",
        kind: Kind::Mutation,
        doc: "mutation($worker: ID!) { drainWorker(id: $worker) { id draining } }",
        allowed: &[Operator],
    },
    Row {
        name: "createTenant",
        kind: Kind::Mutation,
        doc: "mutation($tenantName: String!) { createTenant(name: $tenantName, region: \"local\", ownerEmail: \"owner@new.test\") { tenant { id } } }",
        allowed: &[Operator],
    },
    Row {
        name: "erasureJobs",
        kind: Kind::Query,
        doc: "{ erasureJobs { id status subject subjectId } }",
        allowed: &[Owner, Admin, Operator],
    },
    Row {
        name: "erasureJob",
        kind: Kind::Query,
        doc: "query($job: ID!) { erasureJob(id: $job) { id status } }",
        allowed: &[Owner, Admin, Operator],
    },
    // ---- subscriptions
    Row {
        name: "botEvents",
        kind: Kind::Subscription,
        doc: "subscription($bot: ID!) { botEvents(botId: $bot) { botId status } }",
        allowed: READERS,
    },
    Row {
        name: "botActivity",
        kind: Kind::Subscription,
        doc: "subscription($bot: ID!) { botActivity(botId: $bot) { kind at } }",
        allowed: READERS,
    },
    Row {
        name: "transcript",
        kind: Kind::Subscription,
        doc: "subscription($bot: ID!) { transcript(botId: $bot) { id text } }",
        allowed: READERS,
    },
    // ---- console routes behind sign-in
    Row {
        name: "/console/audit.jsonl",
        kind: Kind::Route,
        doc: "/console/audit.jsonl",
        allowed: &[Owner, Admin, Auditor, Operator],
    },
];

/// A caller: an API key (tenant roles) or the operator's console session.
#[derive(Clone)]
struct Caller {
    who: Who,
    key: Option<String>,
    cookie: Option<String>,
}

struct Tenant {
    id: String,
    owner: support::Api,
    callers: Vec<Caller>,
}

async fn tenant(cluster: &Cluster, name: &str, operator_cookie: &str) -> Tenant {
    let t = cluster.admin.create_tenant(name, "local").await.unwrap();
    let mut callers = Vec::new();
    for (who, role) in [
        (Owner, Role::Owner),
        (Admin, Role::Admin),
        (Developer, Role::Developer),
        (Viewer, Role::Viewer),
        (Auditor, Role::Auditor),
    ] {
        let key = cluster
            .admin
            .create_api_key(&t.tenant_id, &format!("{who:?}"), role, None)
            .await
            .unwrap();
        callers.push(Caller {
            who,
            key: Some(key),
            cookie: None,
        });
    }
    callers.push(Caller {
        who: Operator,
        key: None,
        cookie: Some(operator_cookie.to_string()),
    });
    Tenant {
        id: t.tenant_id,
        owner: support::Api::new(&cluster.http, &t.api_key),
        callers,
    }
}

/// Fresh objects in a tenant for one call: a bot, a webhook endpoint, an
/// invitation, a member, a key, a legal hold on the bot; and a unique name
/// for a new tenant.
async fn targets(cluster: &Cluster, t: &Tenant, n: usize) -> Value {
    let bot = t
        .owner
        .create_bot(&cluster.meeting(&format!("m{n}"), ""), "Matrix Bot")
        .await;
    let endpoint = t
        .owner
        .gql(
            "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/h\" }) { endpoint { id } } }",
            json!({}),
        )
        .await["createWebhookEndpoint"]["endpoint"]["id"]
        .clone();
    let invitation = t
        .owner
        .gql(
            "mutation($e: String!) { inviteMember(email: $e, role: DEVELOPER) { id } }",
            json!({ "e": format!("invitee{n}@{}.test", t.id) }),
        )
        .await["inviteMember"]["id"]
        .clone();
    let member = cluster
        .admin
        .add_member(&t.id, &format!("member{n}@{}.test", t.id), Role::Developer)
        .await
        .unwrap();
    let key = t
        .owner
        .gql(
            "mutation { createApiKey(name: \"target\", role: VIEWER) { apiKey { id } } }",
            json!({}),
        )
        .await["createApiKey"]["apiKey"]["id"]
        .clone();
    let hold = t
        .owner
        .gql(
            "mutation($bot: ID!) { setLegalHold(input: { botId: $bot, reason: \"target\" }) { id } }",
            json!({ "bot": bot }),
        )
        .await["setLegalHold"]["id"]
        .clone();
    // Erased by whoever may: a bot of its own, and a tenant of its own.
    let unheld_bot = t
        .owner
        .create_bot(&cluster.meeting(&format!("e{n}"), ""), "Matrix Bot")
        .await;
    let job = t
        .owner
        .gql(
            "mutation { eraseParticipant(name: \"Nobody Here\") { id } }",
            json!({}),
        )
        .await["eraseParticipant"]["id"]
        .clone();
    let doomed = cluster
        .admin
        .create_tenant(&format!("doomed-{n}"), "local")
        .await
        .unwrap();
    json!({
        "bot": bot,
        "unheldBot": unheld_bot,
        "job": job,
        "doomedTenant": doomed.tenant_id,
        "hold": hold,
        "endpoint": endpoint,
        "invitation": invitation,
        "member": member,
        "key": key,
        "email": format!("new{n}@example.test"),
        "url": cluster.meeting(&format!("new{n}"), ""),
        "tenantName": format!("made-{n}"),
    })
}

/// What a call came to: allowed (with the response body), or refused with
/// an error code.
#[derive(Debug)]
enum Outcome {
    Allowed(String),
    Refused(String),
}

async fn call(cluster: &Cluster, c: &Caller, row: &Row, vars: &Value) -> Outcome {
    let client = reqwest::Client::new();
    match row.kind {
        Kind::Query | Kind::Mutation => {
            let mut req = client
                .post(format!("{}/graphql", cluster.http))
                .json(&json!({ "query": row.doc, "variables": vars }));
            req = match (&c.key, &c.cookie) {
                (Some(k), _) => req.bearer_auth(k),
                (None, Some(cookie)) => req
                    .header("cookie", format!("attache_session={cookie}"))
                    .header("x-attache-console", "1"),
                _ => req,
            };
            let resp = req.send().await.unwrap();
            let body: Value = resp.json().await.unwrap();
            match body["errors"][0]["extensions"]["code"].as_str() {
                Some(code) => Outcome::Refused(code.to_string()),
                None => Outcome::Allowed(body.to_string()),
            }
        }
        Kind::Subscription => subscribe_once(cluster, c, row, vars).await,
        Kind::Route => {
            let mut req = client.get(format!("{}{}", cluster.http, row.doc));
            req = match (&c.key, &c.cookie) {
                (Some(k), _) => req.bearer_auth(k),
                (None, Some(cookie)) => req.header("cookie", format!("attache_session={cookie}")),
                _ => req,
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            match status {
                200 => Outcome::Allowed(text),
                403 => Outcome::Refused("FORBIDDEN".into()),
                401 => Outcome::Refused("UNAUTHENTICATED".into()),
                s => panic!("{} answered {s}: {text}", row.name),
            }
        }
    }
}

/// Opens a subscription and reads what comes within a second: an error
/// (refused), data, or nothing yet (allowed: the stream is open).
async fn subscribe_once(cluster: &Cluster, c: &Caller, row: &Row, vars: &Value) -> Outcome {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = cluster.http.replace("http://", "ws://") + "/graphql/ws";
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(cookie) = &c.cookie {
        req.headers_mut().insert(
            "Cookie",
            format!("attache_session={cookie}").parse().unwrap(),
        );
        req.headers_mut()
            .insert("Origin", cluster.http.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let payload = match &c.key {
        Some(k) => json!({ "Authorization": format!("Bearer {k}") }),
        None => json!({}),
    };
    let init = json!({ "type": "connection_init", "payload": payload });
    futures::SinkExt::send(&mut ws, Message::text(init.to_string()))
        .await
        .unwrap();
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": row.doc, "variables": vars } });
    futures::SinkExt::send(&mut ws, Message::text(sub.to_string()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        let Ok(Some(Ok(Message::Text(t)))) = next else {
            return Outcome::Allowed(String::new());
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["type"].as_str() {
            Some("connection_ack") => continue,
            Some("next") if v["payload"].get("errors").is_some() => {
                let code = v["payload"]["errors"][0]["extensions"]["code"]
                    .as_str()
                    .unwrap_or("ERROR");
                return Outcome::Refused(code.to_string());
            }
            Some("next") => return Outcome::Allowed(t.to_string()),
            Some("error") => {
                let code = v["payload"][0]["extensions"]["code"]
                    .as_str()
                    .unwrap_or("ERROR");
                return Outcome::Refused(code.to_string());
            }
            _ => return Outcome::Allowed(t.to_string()),
        }
    }
}

/// The root fields of one type in the schema's SDL.
fn fields_of(sdl: &str, type_name: &str) -> BTreeSet<String> {
    let start = sdl
        .find(&format!("type {type_name} {{"))
        .unwrap_or_else(|| panic!("no {type_name} in the schema"));
    let body = &sdl[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
    let mut out = BTreeSet::new();
    let mut depth = 0i32;
    let mut in_doc = false;
    for line in body.lines() {
        let l = line.trim();
        if l.starts_with("\"\"\"") {
            let closes = l.len() > 3 && l.ends_with("\"\"\"");
            if !closes {
                in_doc = !in_doc;
            }
            continue;
        }
        if in_doc || l.is_empty() || l.starts_with('"') {
            continue;
        }
        if depth == 0 {
            let name: String = l
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        depth += l.matches('(').count() as i32 - l.matches(')').count() as i32;
    }
    out
}

#[test]
fn every_operation_of_the_schema_has_a_row() {
    let sdl = attache_control_plane::sdl();
    let mut missing = Vec::new();
    for (type_name, kind) in [
        ("QueryRoot", Kind::Query),
        ("MutationRoot", Kind::Mutation),
        ("SubscriptionRoot", Kind::Subscription),
    ] {
        let fields = fields_of(&sdl, type_name);
        assert!(fields.len() >= 2, "{type_name}: {fields:?}");
        for f in &fields {
            if !TABLE.iter().any(|r| r.kind == kind && r.name == f) {
                missing.push(format!("{type_name}.{f}"));
            }
        }
        for r in TABLE.iter().filter(|r| r.kind == kind) {
            assert!(
                fields.contains(r.name),
                "{} is in the table but not the schema",
                r.name
            );
        }
    }
    assert!(
        missing.is_empty(),
        "operations without a row in the matrix: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_as_every_role_in_its_own_tenant_and_against_another() {
    let cluster = Cluster::start_with(Options {
        api_limit: Some((100_000, 100_000)),
        create_bot_limit: Some((100_000, 100_000)),
        ..Default::default()
    })
    .await;
    cluster
        .admin
        .add_operator("ops@platform.test")
        .await
        .unwrap();
    let operator = cluster
        .admin
        .operator_session("ops@platform.test", Duration::from_secs(3600))
        .await
        .unwrap();
    let a = tenant(&cluster, "tenant-a", &operator).await;
    let b = tenant(&cluster, "tenant-b", &operator).await;
    // A worker enrolled (and never run), for the operator to drain.
    let worker = {
        let mut wc = cluster.worker_config(temp_dir("matrix-worker"));
        wc.join_token = Some(
            cluster
                .admin
                .worker_token_in("local", None, Duration::from_secs(600))
                .await
                .unwrap()
                .token,
        );
        attache_edge_worker::EdgeWorker::build(wc)
            .await
            .expect("worker enrolls")
            .worker_id()
            .to_string()
    };

    let mut n = 0;
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in TABLE {
        for (i, caller) in a.callers.iter().enumerate() {
            n += 1;
            let mut vars = targets(&cluster, &a, n).await;
            vars["worker"] = worker.clone().into();
            // First the same role of tenant B, against A's objects: never
            // allowed to reach them. (The operator belongs to no tenant: its
            // one run below is against A's objects.)
            let intruder = &b.callers[i];
            if caller.who != Operator {
                assert_eq!(intruder.who, caller.who);
                let out = call(&cluster, intruder, row, &vars).await;
                cells += 1;
                match &out {
                    Outcome::Refused(code) if code == "FORBIDDEN" || code == "NOT_FOUND" => {}
                    Outcome::Allowed(body) if !row.allowed.contains(&caller.who) => {
                        failures.push(format!(
                            "{} as {:?} of another tenant: allowed ({body})",
                            row.name, caller.who
                        ));
                    }
                    Outcome::Allowed(body) => {
                        // Allowed in B's own tenant: nothing of A may show.
                        for marker in [
                            &a.id,
                            vars["bot"].as_str().unwrap(),
                            vars["member"].as_str().unwrap(),
                            "tenant-a",
                        ] {
                            if body.contains(marker) {
                                failures.push(format!(
                                    "{} as {:?} of another tenant shows {marker}: {body}",
                                    row.name, caller.who
                                ));
                            }
                        }
                    }
                    Outcome::Refused(code) => failures.push(format!(
                        "{} as {:?} of another tenant: {code}, not FORBIDDEN or NOT_FOUND",
                        row.name, caller.who
                    )),
                }
            }
            // Then the caller in its own tenant (the operator: the
            // platform), on the same objects, which must still be there.
            let out = call(&cluster, caller, row, &vars).await;
            cells += 1;
            let want = row.allowed.contains(&caller.who);
            match (&out, want) {
                (Outcome::Allowed(_), true) => {}
                (Outcome::Refused(code), false) if code == "FORBIDDEN" => {}
                (out, want) => failures.push(format!(
                    "{} as {:?}: {out:?}, want {}",
                    row.name,
                    caller.who,
                    if want { "allowed" } else { "FORBIDDEN" }
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "authorization matrix: {} operations × {} roles, own tenant and another = {cells} cells",
        TABLE.len(),
        EVERY_ROLE.len()
    );

    // Every mutation above, allowed or refused, is in the audit log, and
    // the chain verifies. The trail is read to its start, page by page.
    let mut entries = Vec::new();
    let mut before = Value::Null;
    loop {
        let page = a
            .owner
            .gql(
                "query($before: Int) { auditLog(first: 500, before: $before) { seq actor action outcome } }",
                json!({ "before": before }),
            )
            .await["auditLog"]
            .as_array()
            .unwrap()
            .clone();
        let Some(last) = page.last() else { break };
        before = last["seq"].clone();
        entries.extend(page);
    }
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "removeMember" && e["outcome"] == "ok")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "removeMember" && e["outcome"] == "FORBIDDEN")
    );
    match cluster.admin.verify_audit().await.unwrap() {
        attache_control_plane::AuditVerdict::Intact { entries, .. } => assert!(entries > 100),
        v => panic!("{v:?}"),
    }
}
