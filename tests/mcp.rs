//! The Model Context Protocol server at `/mcp`, driven by PyPI's `mcp`
//! (the reference Python SDK) over streamable HTTP, as an agent would: it
//! sends a bot into the sandbox meeting, follows it, reads who was there and
//! what was said, and makes it leave; and it is refused what the GraphQL API
//! refuses, with the same codes, the same tenant walls and the same request
//! budget.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use attache_control_plane::DefaultTranscription;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// `tests/mcp/client.py` under the clients' virtualenv: one JSON line in,
/// one out.
struct Agent {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

fn python() -> String {
    match std::env::var("ATTACHE_CLIENTS_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_CLIENTS_PYTHON is not set; run the suite with scripts/test")
        }
        _ => "python3".into(),
    }
}

impl Agent {
    /// Connects and initializes; the first line is the server's name and
    /// protocol, or why it failed.
    async fn start(http: &str, key: Option<&str>) -> (Agent, Value) {
        let mut cmd = Command::new(python());
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py"))
            .arg(format!("{http}/mcp"));
        if let Some(k) = key {
            cmd.arg(k);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the MCP client starts");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = next(&mut lines).await;
        (
            Agent {
                _child: child,
                stdin,
                lines,
            },
            first,
        )
    }

    async fn ask(&mut self, v: Value) -> Value {
        self.stdin
            .write_all(format!("{v}\n").as_bytes())
            .await
            .unwrap();
        next(&mut self.lines).await
    }

    /// A tool's answer: its JSON when it succeeded, or the error's text.
    async fn call(&mut self, tool: &str, args: Value) -> Result<Value, String> {
        let r = self.ask(json!({ "call": tool, "args": args })).await;
        if let Some(e) = r["exception"].as_str() {
            return Err(format!("exception: {e}"));
        }
        let text = r["text"].as_str().unwrap_or_else(|| panic!("{r}"));
        if r["is_error"] == true {
            Err(text.to_string())
        } else {
            Ok(serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}")))
        }
    }

    async fn ok(&mut self, tool: &str, args: Value) -> Value {
        self.call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }
}

async fn next(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the MCP client answers")
        .unwrap()
        .expect("the MCP client is still running");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Asks `tool` until `done` holds of its answer.
async fn until(
    agent: &mut Agent,
    tool: &str,
    args: Value,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = agent.ok(tool, args.clone()).await;
        if done(&v) {
            return v;
        }
        assert!(start.elapsed() < within, "{tool} never got there: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sends_a_bot_follows_it_and_reads_what_it_heard() {
    let mut cluster = Cluster::start_with(Options {
        tweak: Some(|c| c.default_transcription = DefaultTranscription::Local),
        ..Default::default()
    })
    .await;
    cluster.add_worker(1).await;
    let (_, key) = {
        let t = cluster.admin.create_tenant("acme", "local").await.unwrap();
        (t.tenant_id, t.api_key)
    };
    let api = Api::new(&cluster.http, &key);

    let (mut agent, hello) = Agent::start(&cluster.http, Some(&key)).await;
    assert_eq!(hello["server"], "attache", "{hello}");

    let tools = agent.ask(json!({ "list": true })).await;
    let mut names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "create_bot",
            "get_bot",
            "get_participants",
            "get_transcript",
            "leave_bot",
            "list_bots"
        ]
    );
    let create = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "create_bot")
        .unwrap();
    assert_eq!(create["input_schema"]["required"], json!(["meeting_url"]));
    assert!(
        create["input_schema"]["properties"]["meeting_url"]["description"]
            .as_str()
            .unwrap()
            .contains("Google Meet"),
        "{create}"
    );

    let meeting = cluster.meeting("mcp", "admission=open&script=demo");
    let bot = agent
        .ok(
            "create_bot",
            json!({ "meeting_url": meeting, "bot_name": "Scribe" }),
        )
        .await;
    let id = bot["id"].as_str().unwrap().to_string();
    assert_eq!(bot["botName"], "Scribe");
    assert_eq!(bot["meetingUrl"], meeting.as_str());

    until(
        &mut agent,
        "get_bot",
        json!({ "bot_id": id }),
        Duration::from_secs(40),
        |b| b["status"] == "IN_CALL",
    )
    .await;
    let listed = agent.ok("list_bots", json!({ "status": "IN_CALL" })).await;
    assert_eq!(listed["totalCount"], 1, "{listed}");
    assert_eq!(listed["edges"][0]["node"]["id"], id.as_str());

    // Who is there, while the meeting goes on.
    let seen = until(
        &mut agent,
        "get_participants",
        json!({ "bot_id": id }),
        Duration::from_secs(20),
        |b| b["participants"].as_array().is_some_and(|p| p.len() >= 3),
    )
    .await;
    let mut people: Vec<&str> = seen["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    people.sort();
    people.dedup();
    assert_eq!(people, ["Alice", "Bob", "Carol"], "{seen}");

    // Something said, with its speaker, then the bot is told to leave.
    let heard = until(
        &mut agent,
        "get_transcript",
        json!({ "bot_id": id }),
        Duration::from_secs(40),
        |b| {
            b["transcript"]["edges"]
                .as_array()
                .is_some_and(|e| e.iter().any(|s| s["node"]["isFinal"] == true))
        },
    )
    .await;
    for e in heard["transcript"]["edges"].as_array().unwrap() {
        // No speaker where a segment spans a change of speaker.
        if let Some(speaker) = e["node"]["speaker"].as_str() {
            assert!(
                ["Alice", "Bob", "Carol"].contains(&speaker),
                "a segment of someone not there: {e}"
            );
        }
        assert!(!e["node"]["text"].as_str().unwrap().is_empty(), "{e}");
    }
    assert!(
        !heard["transcriptText"].as_str().unwrap().is_empty(),
        "{heard}"
    );

    // Leaving is asked of the worker: the bot ends soon after.
    let left = agent.ok("leave_bot", json!({ "bot_id": id })).await;
    assert_eq!(left["id"], id.as_str(), "{left}");
    api.wait_status(&id, "ENDED", Duration::from_secs(15)).await;
    let ended = agent.ok("get_bot", json!({ "bot_id": id })).await;
    assert_eq!(ended["status"], "ENDED", "{ended}");

    // The audit log names the key that acted through MCP.
    let log = api
        .gql("{ auditLog(first: 50) { action actor } }", json!({}))
        .await;
    let acted: Vec<&Value> = log["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "createBot" || e["action"] == "leaveBot")
        .collect();
    assert_eq!(acted.len(), 2, "{log}");
    for e in acted {
        assert!(e["actor"].as_str().unwrap().starts_with("key:"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_is_refused_what_the_api_refuses() {
    let cluster = Cluster::start_with(Options {
        // 30 requests at once per tenant, then one every 10 s.
        api_limit: Some((6, 30)),
        ..Default::default()
    })
    .await;
    let owner = cluster.tenant("acme").await;
    let bot = owner
        .create_bot(&cluster.meeting("walls", "admission=open"), "Scribe")
        .await;

    // No key, or a wrong one: 401 before the protocol, as for /graphql.
    let (_, failed) = Agent::start(&cluster.http, None).await;
    assert!(failed["failed"].is_string(), "{failed}");
    let bad = format!("atk_0123456789abcdef_{}", "0".repeat(64));
    let (_, failed) = Agent::start(&cluster.http, Some(&bad)).await;
    assert!(failed["failed"].is_string(), "{failed}");
    let r = reqwest::Client::new()
        .post(format!("{}/mcp", cluster.http))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // A viewer reads but may not send a bot.
    let viewer = owner
        .gql(
            "mutation { createApiKey(name: \"agent\", role: VIEWER) { secret } }",
            json!({}),
        )
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut agent, _) = Agent::start(&cluster.http, Some(&viewer)).await;
    let e = agent
        .call(
            "create_bot",
            json!({ "meeting_url": cluster.meeting("walls", "") }),
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("FORBIDDEN: "), "{e}");
    let e = agent
        .call("leave_bot", json!({ "bot_id": bot }))
        .await
        .unwrap_err();
    assert!(e.starts_with("FORBIDDEN: "), "{e}");
    let read = agent.ok("get_bot", json!({ "bot_id": bot })).await;
    assert_eq!(read["id"], bot.as_str());
    assert_eq!(owner.bot_count().await, 1, "nothing was created");

    // Another tenant does not see acme's bot, whatever the tool.
    let other = cluster
        .admin
        .create_tenant("globex", "local")
        .await
        .unwrap();
    let (mut agent, _) = Agent::start(&cluster.http, Some(&other.api_key)).await;
    for tool in ["get_bot", "get_transcript", "get_participants", "leave_bot"] {
        let e = agent
            .call(tool, json!({ "bot_id": bot }))
            .await
            .unwrap_err();
        assert!(e.starts_with("NOT_FOUND: "), "{tool}: {e}");
    }
    let listed = agent.ok("list_bots", json!({})).await;
    assert_eq!(listed["totalCount"], 0, "{listed}");

    // Bad input is the API's BAD_USER_INPUT, and loses nothing.
    let e = agent
        .call(
            "create_bot",
            json!({ "meeting_url": "https://example.com/not-a-meeting" }),
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("BAD_USER_INPUT: "), "{e}");
    let e = agent
        .call("create_bot", json!({ "bot_name": "no url" }))
        .await
        .unwrap_err();
    assert!(e.contains("meeting_url"), "{e}");

    // The tenant's request budget is one, whichever door a request takes:
    // calls through MCP use it up and GraphQL is refused after them.
    let burst = cluster.admin.create_tenant("burst", "local").await.unwrap();
    let (mut agent, _) = Agent::start(&cluster.http, Some(&burst.api_key)).await;
    let mut refused = 0;
    for _ in 0..40 {
        if let Err(e) = agent.call("list_bots", json!({})).await {
            assert!(e.starts_with("exception"), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 0, "40 calls at once never hit the burst of 30");
    let api = Api::new(&cluster.http, &burst.api_key);
    assert_eq!(
        api.error_code("{ bots { totalCount } }", json!({})).await,
        "RATE_LIMITED"
    );
}
