// The Attaché console: plain JavaScript over the public GraphQL API, with
// the session cookie for credentials. Every value from the API is put in
// the page as text (textContent), never as markup.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function flash(message, ok = false) {
  const f = $("#flash");
  f.textContent = message;
  f.className = ok ? "ok" : "";
  f.hidden = !message;
}

class SignedOut extends Error {}

async function gql(query, variables = {}) {
  const resp = await fetch("/graphql", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-attache-console": "1" },
    body: JSON.stringify({ query, variables }),
  });
  if (resp.status === 401) throw new SignedOut();
  // A refusal before GraphQL (a proxy, an oversized body) may not be JSON:
  // say what came back rather than that it did not parse.
  const text = await resp.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    const err = new Error(`HTTP ${resp.status}: ${text.slice(0, 200) || resp.statusText}`);
    err.code = null;
    throw err;
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    const code = e.extensions && e.extensions.code;
    const err = new Error(code ? `${e.message} (${code})` : e.message);
    err.code = code || null;
    throw err;
  }
  return body.data;
}

// graphql-transport-ws over the same origin; the cookie authenticates.
function subscribe(query, variables, onData, onEnd) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/graphql/ws`, "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: {} }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
    } else if (msg.type === "next" && msg.payload.data) {
      onData(msg.payload.data);
    } else if (msg.type === "complete" || msg.type === "error") {
      ws.close();
    }
  };
  ws.onclose = () => onEnd && onEnd();
  return ws;
}

const ROLES = ["OWNER", "ADMIN", "DEVELOPER", "VIEWER", "AUDITOR"];
let me = null;
// What the page shown keeps running (sockets, timers): each has close(),
// called when the page is left or shown again.
let live = [];

function closeLive() {
  live.forEach((x) => x.close());
  live = [];
}

const when = (t) => (t ? new Date(t).toLocaleString() : "—");

function table(headers, rows, testid) {
  return el("table", { "data-testid": testid },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function roleSelect(value, attrs = {}) {
  return el("select", attrs, ROLES.map((r) => el("option", { value: r, selected: r === value }, r.toLowerCase())));
}

async function act(fn, okMessage) {
  try {
    await fn();
    flash(okMessage, true);
    await route();
  } catch (e) {
    if (e instanceof SignedOut) return signIn();
    flash(e.message);
  }
}

// ---- pages ---------------------------------------------------------------

const pages = {
  async bots() {
    const d = await gql(`{ bots(first: 50) { edges { node { id status statusReason meetingUrl botName createdAt } } } }`);
    const rows = d.bots.edges.map(({ node: b }) =>
      el("tr", { "data-bot": b.id },
        el("td", {}, el("a", { href: `#bot/${b.id}` }, b.botName)),
        el("td", {}, b.meetingUrl),
        el("td", {}, el("span", { class: `status ${b.status}`, "data-testid": `status-${b.id}` }, b.status),
          b.statusReason ? el("span", { class: "muted" }, ` ${b.statusReason}`) : null),
        el("td", {}, when(b.createdAt))));
    const can = me.permissions.includes("create_bot");
    const form = can && el("form", { id: "create-bot", onsubmit: (e) => {
      e.preventDefault();
      const f = e.target;
      act(() => gql(`mutation($u: String!, $n: String) { createBot(input: { meetingUrl: $u, botName: $n }) { id } }`,
        { u: f.url.value, n: f.botname.value || null }), "Bot sent");
    } },
      el("label", {}, "Meeting URL", el("input", { name: "url", required: true, size: 50 })),
      el("label", {}, "Bot name", el("input", { name: "botname" })),
      el("button", {}, "Send a bot"));
    for (const { node: b } of d.bots.edges) {
      if (b.status === "ENDED" || b.status === "FAILED") continue;
      live.push(subscribe(`subscription($id: ID!) { botEvents(botId: $id) { status reason } }`, { id: b.id }, (data) => {
        const s = document.querySelector(`[data-testid="status-${b.id}"]`);
        if (s) { s.textContent = data.botEvents.status; s.className = `status ${data.botEvents.status}`; }
      }));
    }
    return [el("h2", {}, "Bots"), form, table(["Bot", "Meeting", "Status", "Created"], rows, "bots")];
  },

  async bot(id) {
    const d = await gql(`query($id: ID!) { bot(id: $id) { id botName status statusReason meetingUrl events { status at reason } transcriptText } }`, { id });
    const b = d.bot;
    const status = el("span", { class: `status ${b.status}`, "data-testid": "bot-status" }, b.status);
    const transcript = el("pre", { class: "transcript", "data-testid": "transcript" }, b.transcriptText || "No transcript yet.");
    if (b.status !== "ENDED" && b.status !== "FAILED") {
      live.push(subscribe(`subscription($id: ID!) { botEvents(botId: $id) { status } }`, { id }, (data) => {
        status.textContent = data.botEvents.status;
        status.className = `status ${data.botEvents.status}`;
      }));
      const lines = new Map();
      live.push(subscribe(`subscription($id: ID!) { transcript(botId: $id) { id startMs speaker text isFinal } }`, { id }, (data) => {
        const s = data.transcript;
        lines.set(s.id, s);
        transcript.textContent = [...lines.values()].sort((a, b) => a.startMs - b.startMs)
          .map((x) => `${x.speaker || "?"}: ${x.text}${x.isFinal ? "" : " …"}`).join("\n");
      }));
    }
    return [el("h2", {}, b.botName, " ", status), el("p", { class: "muted" }, b.meetingUrl),
      table(["Status", "At", "Reason"], b.events.map((e) => el("tr", {}, el("td", {}, e.status), el("td", {}, when(e.at)), el("td", {}, e.reason || ""))), "events"),
      el("h2", {}, "Transcript"), transcript];
  },

  async members() {
    const d = await gql(`{ members { id email name role lastSignInAt } invitations { id email role expiresAt } }`);
    const can = me.permissions.includes("manage_members");
    const rows = d.members.map((m) => el("tr", { "data-member": m.email },
      el("td", {}, m.email), el("td", {}, m.name || ""),
      el("td", {}, can ? roleSelect(m.role, { "data-testid": `role-${m.email}`, onchange: (e) =>
        act(() => gql(`mutation($id: ID!, $r: Role!) { setMemberRole(id: $id, role: $r) { id } }`, { id: m.id, r: e.target.value }), `Role of ${m.email} changed`) })
        : m.role.toLowerCase()),
      el("td", {}, when(m.lastSignInAt)),
      el("td", {}, can ? el("button", { class: "danger", onclick: () => confirm(`Remove ${m.email}?`) &&
        act(() => gql(`mutation($id: ID!) { removeMember(id: $id) }`, { id: m.id }), `${m.email} removed`) }, "Remove") : "")));
    const invites = d.invitations.map((i) => el("tr", { "data-invite": i.email },
      el("td", {}, i.email), el("td", {}, i.role.toLowerCase()), el("td", {}, when(i.expiresAt)),
      el("td", {}, can ? el("button", { class: "secondary", onclick: () =>
        act(() => gql(`mutation($id: ID!) { revokeInvitation(id: $id) }`, { id: i.id }), "Invitation revoked") }, "Revoke") : "")));
    const form = can && el("form", { id: "invite", onsubmit: (e) => {
      e.preventDefault();
      const f = e.target;
      act(() => gql(`mutation($e: String!, $r: Role!) { inviteMember(email: $e, role: $r) { id } }`, { e: f.email.value, r: f.role.value }), `${f.email.value} invited`);
    } },
      el("label", {}, "Email", el("input", { name: "email", type: "email", required: true })),
      el("label", {}, "Role", roleSelect("VIEWER", { name: "role" })),
      el("button", {}, "Invite"));
    return [el("h2", {}, "Members"), table(["Email", "Name", "Role", "Last sign-in", ""], rows, "members"),
      el("h2", {}, "Invitations"), form, table(["Email", "Role", "Expires", ""], invites, "invitations")];
  },

  async keys() {
    const d = await gql(`{ apiKeys { id prefix name role createdBy expiresAt lastUsedAt active } }`);
    const can = me.permissions.includes("manage_api_keys");
    const shown = el("div");
    const rows = d.apiKeys.map((k) => el("tr", { "data-key": k.name },
      el("td", {}, k.name), el("td", {}, el("code", {}, k.prefix + "…")), el("td", {}, k.role.toLowerCase()),
      el("td", {}, k.createdBy || ""), el("td", {}, when(k.expiresAt)), el("td", {}, when(k.lastUsedAt)),
      el("td", { "data-testid": `key-state-${k.name}` }, k.active ? "active" : "revoked or expired"),
      el("td", {}, can && k.active ? el("button", { class: "danger", onclick: () =>
        act(() => gql(`mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: k.id }), `Key ${k.name} revoked`) }, "Revoke") : "")));
    const form = can && el("form", { id: "create-key", onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target;
      try {
        const r = await gql(`mutation($n: String!, $r: Role!, $d: Int) { createApiKey(name: $n, role: $r, expiresInDays: $d) { secret } }`,
          { n: f.name.value, r: f.role.value, d: f.days.value ? Number(f.days.value) : null });
        await route();
        flash("Key created: copy it now, it is not shown again.", true);
        $("#app").prepend(el("p", { class: "secret", "data-testid": "new-key" }, r.createApiKey.secret));
      } catch (err) { flash(err.message); }
    } },
      el("label", {}, "Name", el("input", { name: "name", required: true })),
      el("label", {}, "Role", roleSelect("DEVELOPER", { name: "role" })),
      el("label", {}, "Expires in days", el("input", { name: "days", type: "number", min: 1, max: 3650, value: 90 })),
      el("button", {}, "Create key"));
    return [el("h2", {}, "API keys"), shown, form,
      table(["Name", "Key", "Role", "Created by", "Expires", "Last used", "State", ""], rows, "keys")];
  },

  async webhooks() {
    const d = await gql(`{ webhookEndpoints { id url eventTypes enabled disabledReason } }`);
    const can = me.permissions.includes("manage_webhooks");
    const rows = d.webhookEndpoints.map((w) => el("tr", {},
      el("td", {}, w.url), el("td", {}, w.eventTypes.join(", ")),
      el("td", {}, w.enabled ? "enabled" : `disabled: ${w.disabledReason || ""}`),
      el("td", {}, can ? el("button", { class: "danger", onclick: () =>
        act(() => gql(`mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }`, { id: w.id }), "Endpoint deleted") }, "Delete") : "")));
    const form = can && el("form", { id: "create-webhook", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await gql(`mutation($u: String!) { createWebhookEndpoint(input: { url: $u }) { secret } }`, { u: e.target.url.value });
        await route();
        flash("Endpoint created: copy its signing secret now.", true);
        $("#app").prepend(el("p", { class: "secret" }, r.createWebhookEndpoint.secret));
      } catch (err) { flash(err.message); }
    } }, el("label", {}, "URL", el("input", { name: "url", required: true, size: 50 })), el("button", {}, "Add endpoint"));
    return [el("h2", {}, "Webhook endpoints"), form, table(["URL", "Events", "State", ""], rows, "webhooks")];
  },

  async settings() {
    const out = [];
    if (me.permissions.includes("manage_settings")) {
      const d = await gql(`{ tenantSettings { retentionDays } }`);
      out.push(el("h2", {}, "Retention"), el("form", { id: "retention", onsubmit: (e) => {
        e.preventDefault();
        const v = e.target.days.value;
        act(() => gql(`mutation($d: Int) { setRetention(days: $d) { retentionDays } }`, { d: v ? Number(v) : null }), "Retention saved");
      } }, el("label", {}, "Keep ended bots' data for (days, empty: until deleted)",
        el("input", { name: "days", type: "number", min: 1, max: 3650, value: d.tenantSettings.retentionDays ?? "" })),
      el("button", {}, "Save")));
    }
    if (me.permissions.includes("manage_sso")) {
      const d = await gql(`{ identityProvider { issuer clientId allowedDomains redirectUri signInUrl } }`);
      const p = d.identityProvider || {};
      out.push(el("h2", {}, "Sign-in (OpenID Connect)"),
        p.redirectUri ? el("p", { class: "muted" }, `Redirect URI: ${p.redirectUri} · Sign-in link: ${p.signInUrl}`) : null,
        el("form", { id: "sso", onsubmit: (e) => {
          e.preventDefault();
          const f = e.target;
          act(() => gql(`mutation($i: IdentityProviderInput!) { setIdentityProvider(input: $i) }`, { i: {
            issuer: f.issuer.value, clientId: f.client.value, clientSecret: f.secret.value,
            allowedDomains: f.domains.value.split(",").map((s) => s.trim()).filter(Boolean) } }), "Sign-in saved");
        } },
        el("label", {}, "Issuer", el("input", { name: "issuer", required: true, value: p.issuer || "", size: 40 })),
        el("label", {}, "Client id", el("input", { name: "client", required: true, value: p.clientId || "" })),
        el("label", {}, "Client secret", el("input", { name: "secret", type: "password", required: true, title: "Required on every save" })),
        el("label", {}, "Email domains that join as viewers", el("input", { name: "domains", value: (p.allowedDomains || []).join(", ") })),
        el("button", {}, "Save")));
    }
    return out.length ? out : [el("p", {}, "Your role has no settings to change.")];
  },

  async audit() {
    const d = await gql(`{ auditLog(first: 100) { seq at actor action target outcome } }`);
    const rows = d.auditLog.map((a) => el("tr", {},
      el("td", {}, a.seq), el("td", {}, when(a.at)), el("td", {}, a.actor), el("td", {}, a.action),
      el("td", {}, a.target || ""), el("td", {}, a.outcome)));
    return [el("h2", {}, "Audit log"), el("p", {}, el("a", { href: "/console/audit.jsonl" }, "Export as JSON lines")),
      table(["#", "At", "Actor", "Action", "Target", "Outcome"], rows, "audit")];
  },

  async tenants() {
    const d = await gql(`{ tenants { id name region members createdAt } }`);
    const rows = d.tenants.map((t) => el("tr", {}, el("td", {}, t.name), el("td", {}, t.region), el("td", {}, t.members), el("td", {}, when(t.createdAt))));
    const form = el("form", { id: "create-tenant", onsubmit: (e) => {
      e.preventDefault();
      const f = e.target;
      act(() => gql(`mutation($n: String!, $r: String!, $o: String!) { createTenant(name: $n, region: $r, ownerEmail: $o) { tenant { id } } }`,
        { n: f.name.value, r: f.region.value, o: f.owner.value }), `Tenant ${f.name.value} created`);
    } },
      el("label", {}, "Name", el("input", { name: "name", required: true })),
      el("label", {}, "Region", el("input", { name: "region", required: true })),
      el("label", {}, "Owner's email", el("input", { name: "owner", type: "email", required: true })),
      el("button", {}, "Create tenant"));
    return [el("h2", {}, "Tenants"), form, table(["Name", "Region", "Members", "Created"], rows, "tenants")];
  },

  async fleet() {
    const d = await gql(`{ regions { name capacity activeBots workers { id hostname state draining capacity activeBots rssMib lastSeenAt } } }`);
    return d.regions.length ? d.regions.flatMap((r) => [
      el("h2", {}, `${r.name}: ${r.activeBots} of ${r.capacity} bots`),
      table(["Worker", "State", "Bots", "Capacity", "Memory", "Last seen"], r.workers.map((w) => el("tr", {},
        el("td", {}, w.hostname), el("td", {}, w.state + (w.draining ? " (draining)" : "")), el("td", {}, w.activeBots),
        el("td", {}, w.capacity), el("td", {}, `${w.rssMib} MiB`), el("td", {}, when(w.lastSeenAt)))), `region-${r.name}`),
    ]) : [el("h2", {}, "Fleet"), el("p", {}, "No workers have enrolled yet.")];
  },

  // #governance, or #governance/released to list released holds too.
  async governance(arg) {
    const p = me.permissions;
    const out = [];
    if (p.includes("manage_settings")) out.push(...await sectionOrError(() => retentionSections(arg === "released")));
    if (p.includes("erase_data")) out.push(...await sectionOrError(erasureSection));
    return out.length ? out : [el("p", {}, "Your role has no governance to change.")];
  },
};

// ---- governance ----------------------------------------------------------

const label = (s) => s.toLowerCase().replace(/_/g, " ");
const days = (d, none) => (d == null ? none : d === 1 ? "1 day" : `${d} days`);
const SOURCES = {
  TENANT: "tenant",
  TENANT_SETTINGS: "tenant (Settings page)",
  PLATFORM_DEFAULT: "platform default",
  UNSET: "not set",
};

// One section failing (an API this deployment lacks, say) leaves the others.
async function sectionOrError(render) {
  try {
    return await render();
  } catch (e) {
    if (e instanceof SignedOut) throw e;
    return [el("p", { class: "error" }, e.message)];
  }
}

async function retentionSections(showReleased) {
  const d = await gql(`query($r: Boolean!) {
    retentionPolicy { class retentionDays source platformDefaultDays effectiveDays }
    legalHolds(includeReleased: $r) { id botId reason createdBy createdAt releasedAt releasedBy active } }`, { r: showReleased });
  const setPolicy = (i, okMessage) =>
    act(() => gql(`mutation($i: RetentionPolicyInput!) { setRetentionPolicy(input: $i) { class } }`, { i }), okMessage);

  const rules = d.retentionPolicy.map((c) => {
    const input = el("input", { type: "number", min: 1, max: 3650, step: 1, size: 6, placeholder: "forever",
      value: c.retentionDays ?? "", "aria-label": `Days to keep ${label(c.class)}`, "data-testid": `retention-days-${c.class}` });
    const save = () => {
      if (!input.reportValidity()) return;
      setPolicy({ class: c.class, retentionDays: input.value ? Number(input.value) : null, useDefault: false },
        `Retention of ${label(c.class)} saved`);
    };
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") save(); });
    return el("tr", { "data-class": c.class },
      el("td", {}, label(c.class)),
      el("td", {}, input, " ", el("button", { onclick: save }, "Save")),
      el("td", { "data-testid": `retention-source-${c.class}` }, SOURCES[c.source] || c.source),
      el("td", {}, days(c.platformDefaultDays, "—")),
      el("td", { "data-testid": `retention-effective-${c.class}` }, days(c.effectiveDays, "kept")),
      el("td", {}, el("button", { class: "secondary", disabled: c.source !== "TENANT",
        title: c.source === "TENANT" ? "Drop the tenant's rule for this class" : "The tenant has no rule of its own for this class",
        onclick: () => setPolicy({ class: c.class, retentionDays: null, useDefault: true }, `${label(c.class)}: default retention applies`) },
      "Use default")));
  });

  const canLink = me.permissions.includes("read_bots");
  const holds = d.legalHolds.map((h) => el("tr", { "data-hold": h.id },
    el("td", {}, !h.botId ? "whole tenant"
      : canLink ? el("a", { href: `#bot/${h.botId}` }, el("code", {}, h.botId)) : el("code", {}, h.botId)),
    el("td", {}, h.reason),
    el("td", {}, h.createdBy), el("td", {}, when(h.createdAt)),
    el("td", { "data-testid": `hold-state-${h.id}` }, h.active ? "active"
      : `released ${when(h.releasedAt)}${h.releasedBy ? ` by ${h.releasedBy}` : ""}`),
    el("td", {}, h.active ? el("button", { class: "secondary", onclick: () =>
      act(() => gql(`mutation($id: ID!) { releaseLegalHold(id: $id) { id } }`, { id: h.id }), "Hold released") }, "Release") : "")));
  const holdForm = el("form", { id: "legal-hold", onsubmit: (e) => {
    e.preventDefault();
    const f = e.target;
    const bot = f.bot.value.trim();
    act(() => gql(`mutation($i: LegalHoldInput!) { setLegalHold(input: $i) { id } }`, { i: { botId: bot || null, reason: f.reason.value } }),
      bot ? `Hold set on bot ${bot}` : "Hold set on the whole tenant");
  } },
    el("label", {}, "Bot id (empty: the whole tenant)", el("input", { name: "bot", size: 38 })),
    el("label", {}, "Reason (a matter or ticket)", el("input", { name: "reason", required: true, maxlength: 500, size: 40 })),
    el("button", {}, "Set hold"));
  const toggle = el("label", { class: "inline" },
    el("input", { type: "checkbox", checked: showReleased, "data-testid": "include-released",
      onchange: (e) => { location.hash = e.target.checked ? "governance/released" : "governance"; } }),
    "Include released holds");

  return [
    el("h2", {}, "Retention"),
    el("p", { class: "muted" }, "Days after a bot ends (webhook deliveries: after they were queued) that each class of its data is deleted. Empty: kept forever, whatever the platform's default."),
    table(["Class", "Tenant's days", "Source", "Platform default", "Effective", ""], rules, "retention"),
    el("h2", {}, "Legal holds"),
    el("p", { class: "muted" }, "What a hold covers is not deleted by retention until the hold is released."),
    holdForm, toggle,
    table(["Covers", "Reason", "Set by", "Set at", "State", ""], holds, "legal-holds"),
  ];
}

const ERASURE_JOBS = `{ erasureJobs { id subject subjectId status statusReason certificate requestedBy requestedAt completedAt } }`;
const jobBusy = (j) => j.status === "QUEUED" || j.status === "RUNNING";
const newestFirst = (jobs) => [...jobs].sort((a, b) => new Date(b.requestedAt) - new Date(a.requestedAt));

// A DONE job's certificate as a download, verbatim. Object URLs are kept by
// job id so a poll's new rows reuse them (none revoked under a download in
// progress); all are revoked when the page is left.
function certificateLink(j, certs) {
  let c = certs.get(j.id);
  if (!c || c.text !== j.certificate) {
    if (c) URL.revokeObjectURL(c.url);
    c = { text: j.certificate, url: URL.createObjectURL(new Blob([j.certificate], { type: "application/json" })) };
    certs.set(j.id, c);
  }
  return el("a", { href: c.url, download: `erasure-${j.id}.json`, "data-testid": `certificate-${j.id}` }, "Download");
}

function jobRows(jobs, certs) {
  return jobs.map((j) => el("tr", { "data-job": j.id },
    el("td", {}, label(j.subject), j.subjectId ? el("span", { class: "muted" }, ` ${j.subjectId}`) : null),
    el("td", {}, el("span", { class: `status ${j.status}`, "data-testid": `job-status-${j.id}` }, j.status)),
    el("td", {}, j.statusReason || ""),
    el("td", {}, j.requestedBy), el("td", {}, when(j.requestedAt)), el("td", {}, when(j.completedAt)),
    el("td", {}, j.status === "DONE" && j.certificate ? certificateLink(j, certs) : "")));
}

async function erasureSection() {
  let jobs = newestFirst((await gql(ERASURE_JOBS)).erasureJobs);
  const certs = new Map();
  const jobsTable = table(["Subject", "Status", "Reason", "Requested by", "Requested", "Completed", "Certificate"], [], "erasure-jobs");
  const show = () => jobsTable.tBodies[0].replaceChildren(...jobRows(jobs, certs));
  show();

  // Every 2 s while a job is queued or running; stops when none is, and
  // when the page is left (closeLive) or replaced.
  let timer = null;
  let stopped = false;
  const schedule = () => { if (!stopped && jobs.some(jobBusy)) timer = setTimeout(poll, 2000); };
  async function poll() {
    timer = null;
    if (stopped || !jobsTable.isConnected) return;
    try {
      const next = newestFirst((await gql(ERASURE_JOBS)).erasureJobs);
      if (stopped) return;
      jobs = next;
      show();
    } catch (e) {
      if (e instanceof SignedOut) return signIn();
      flash(e.message);
    }
    schedule();
  }
  live.push({ close() {
    stopped = true;
    clearTimeout(timer);
    certs.forEach((c) => URL.revokeObjectURL(c.url));
    certs.clear();
  } });
  schedule();

  const eraseBot = el("form", { id: "erase-bot", onsubmit: (e) => {
    e.preventDefault();
    const id = e.target.bot.value.trim();
    if (!id) return flash("Give the bot's id.");
    if (!confirm(`Erase bot ${id}: its recording, transcript, chat, participants and its data key?\n\nThe erasure cannot be undone.`)) return;
    act(() => gql(`mutation($id: ID!) { eraseBot(id: $id) { id } }`, { id }), `Erasure of bot ${id} requested`);
  } },
    el("label", {}, "Bot id", el("input", { name: "bot", required: true, size: 38 })),
    el("button", { class: "danger" }, "Erase bot"));
  const eraseParticipant = el("form", { id: "erase-participant", onsubmit: (e) => {
    e.preventDefault();
    const name = e.target.participant.value;
    if (!name.trim()) return flash("Give the participant's name.");
    if (!confirm(`Erase participant "${name}" from every meeting of this tenant?\n\nThe erasure cannot be undone.`)) return;
    act(() => gql(`mutation($n: String!) { eraseParticipant(name: $n) { id } }`, { n: name }), `Erasure of participant "${name}" requested`);
  } },
    el("label", {}, "Participant's name", el("input", { name: "participant", required: true, size: 30 })),
    el("button", { class: "danger" }, "Erase participant"));

  return [el("h2", {}, "Erasure"),
    el("p", { class: "muted" }, "An erasure deletes the data for good and cannot be undone."),
    eraseBot, eraseParticipant, jobsTable];
}

function tabsFor(m) {
  const p = m.permissions;
  if (m.operator) return [["tenants", "Tenants"], ["fleet", "Fleet"], ["audit", "Audit log"]];
  return [
    p.includes("read_bots") && ["bots", "Bots"],
    p.includes("read_members") && ["members", "Members"],
    p.includes("read_api_keys") && ["keys", "API keys"],
    p.includes("read_webhooks") && ["webhooks", "Webhooks"],
    (p.includes("manage_settings") || p.includes("manage_sso")) && ["settings", "Settings"],
    (p.includes("manage_settings") || p.includes("erase_data")) && ["governance", "Governance"],
    p.includes("read_audit") && ["audit", "Audit log"],
  ].filter(Boolean);
}

async function route() {
  closeLive();
  const tabs = tabsFor(me);
  if (!tabs.length) {
    $("#nav").replaceChildren();
    return $("#app").replaceChildren(el("p", {}, "Your role has no page in this console."));
  }
  const [page, arg] = (location.hash.slice(1) || tabs[0][0]).split("/");
  $("#nav").replaceChildren(...tabs.map(([id, label]) =>
    el("a", { href: `#${id}`, class: id === page ? "active" : "" }, label)));
  const render = pages[page];
  if (!render) return $("#app").replaceChildren(el("p", {}, "No such page."));
  try {
    $("#app").replaceChildren(...(await render(arg)).filter(Boolean));
  } catch (e) {
    if (e instanceof SignedOut) return signIn();
    $("#app").replaceChildren(el("p", { class: "error" }, e.message));
  }
}

function signIn() {
  closeLive();
  me = null;
  $("#nav").replaceChildren();
  $("#who").textContent = "";
  $("#signout").hidden = true;
  $("#app").replaceChildren(
    el("h2", {}, "Sign in"),
    el("form", { id: "signin", method: "get", action: "/console/login" },
      el("label", {}, "Tenant", el("input", { name: "tenant", required: true, autocomplete: "organization" })),
      el("button", {}, "Continue")),
    el("p", {}, el("a", { href: "/console/login?operator=1" }, "Sign in as the platform operator")));
}

async function start() {
  $("#signout").addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", credentials: "same-origin", headers: { "x-attache-console": "1" } });
    signIn();
  });
  window.addEventListener("hashchange", () => me && route());
  try {
    me = (await gql(`{ me { actor role operator tenantName permissions } }`)).me;
  } catch (e) {
    if (e instanceof SignedOut) return signIn();
    return flash(e.message);
  }
  $("#who").textContent = `${me.actor.replace(/^user:/, "")} · ${me.operator ? "operator" : `${me.tenantName} (${me.role.toLowerCase()})`}`;
  $("#signout").hidden = false;
  await route();
}

start();
