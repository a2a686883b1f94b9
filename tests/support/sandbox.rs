//! The sandbox meeting as the tests drive it: meeting links, the host's
//! hand, and what the sandbox saw of a participant.

use serde_json::{Value, json};

use super::Cluster;

impl Cluster {
    pub fn meeting(&self, id: &str, query: &str) -> String {
        if query.is_empty() {
            format!("{}/m/{id}", self.sandbox)
        } else {
            format!("{}/m/{id}?{query}", self.sandbox)
        }
    }

    /// A meeting in the sandbox's replica of a platform's page (`meet`,
    /// `teams`, `zoom`).
    pub fn platform_meeting(&self, kind: &str, id: &str, query: &str) -> String {
        format!("{}/platform/{kind}/{id}?{query}", self.sandbox)
    }

    /// The sandbox host's hand: admit, deny, remove, end.
    pub async fn host(&self, meeting: &str, action: &str, name: Option<&str>) {
        let url = format!("{}/api/meetings/{meeting}/{action}", self.sandbox);
        let body = name.map(|n| json!({ "name": n })).unwrap_or(json!({}));
        let r = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "sandbox {action}: {}", r.status());
    }

    /// The sandbox's view of the participant called `name` in `meeting`.
    pub async fn participant(&self, meeting: &str, name: &str) -> Value {
        let m: Value = reqwest::get(format!("{}/api/meetings/{meeting}", self.sandbox))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        m["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not a participant of {meeting}: {m}"))
            .clone()
    }
}
