//! The bot's eyes and hands on the meeting page: one read of the page by
//! the probe script against the platform's table, and the typing and
//! clicks the flow asks for. Elements are acted on through the marks the
//! probe leaves on them (`data-attache`); platform selectors live in the
//! tables alone.

use attache_protocol::Platform;
use chromiumoxide::cdp::browser_protocol::inspector::{
    EnableParams as InspectorEnable, EventTargetCrashed,
};
use chromiumoxide::error::CdpError;
use chromiumoxide::listeners::EventStream;
use serde::Deserialize;

use super::flow::Probe;
use super::roster::{ChatLine, Person};
use super::tables;
use crate::browser::BotContext;

const PROBE_JS: &str = include_str!("probe.js");
/// Longest a click waits for the page.
const CLICK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One read of the page: the flags the join flow runs on, and what the
/// roster and chat show.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct PageRead {
    #[serde(flatten)]
    pub probe: Probe,
    #[serde(default)]
    pub people: Vec<Person>,
    /// How many people the platform says are in the call, the bot
    /// included, where it says so.
    #[serde(default)]
    pub people_count: Option<u32>,
    #[serde(default)]
    pub chat: Vec<ChatLine>,
    /// How late the page's own timer was since the last read, in ms.
    #[serde(default)]
    pub lag_ms: u64,
}

/// Why the page could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum PageError {
    #[error("{0}")]
    Cdp(#[from] CdpError),
    #[error("{0}")]
    Unreadable(#[from] serde_json::Error),
}

/// The probe for one platform: the script applied to its table.
pub(super) fn probe(platform: Platform) -> String {
    let table = tables::table(platform);
    let table_json = serde_json::to_string(table).expect("table serializes");
    format!("({PROBE_JS})({table_json})")
}

/// Reads the page once with `probe`.
pub(super) async fn read(ctx: &BotContext, probe: &str) -> Result<PageRead, PageError> {
    Ok(ctx.page.evaluate(probe).await?.into_value()?)
}

/// Renderer crashes of the bot's page, as they happen.
pub(super) async fn crashes(ctx: &BotContext) -> Result<EventStream<EventTargetCrashed>, CdpError> {
    let _ = ctx.page.execute(InspectorEnable::default()).await;
    ctx.page.event_listener::<EventTargetCrashed>().await
}

/// Acts on what the probe marked inside one of the page's same-origin
/// frames (where a client such as Zoom's runs): `click`s or `focus`es it.
const IN_FRAME_JS: &str = "(name, act) => {
  for (const f of document.querySelectorAll('iframe')) {
    let d;
    try { d = f.contentDocument; } catch (e) { continue; }
    const el = d && d.querySelector(`[data-attache=\"${name}\"]`);
    if (el && el.getClientRects().length) { el[act](); return true; }
  }
  return false;
}";

async fn in_frame(ctx: &BotContext, target: &str, act: &str) -> bool {
    let js = format!(
        "({IN_FRAME_JS})({}, {})",
        serde_json::to_string(target).expect("a name serializes"),
        serde_json::to_string(act).expect("a name serializes")
    );
    match tokio::time::timeout(CLICK_TIMEOUT, ctx.page.evaluate(js)).await {
        Ok(Ok(r)) => r.into_value::<bool>().unwrap_or(false),
        _ => false,
    }
}

pub(super) async fn type_name(ctx: &BotContext, name: &str) -> chromiumoxide::error::Result<()> {
    // Focused rather than clicked: a banner over the field would take the
    // click, and the keys with it. Keys go to whatever has the focus, in a
    // frame too.
    match ctx.page.find_element("[data-attache=\"name\"]").await {
        Ok(el) => {
            el.focus().await?;
            el.type_str(name).await?;
        }
        Err(e) => {
            if !in_frame(ctx, "name", "focus").await {
                return Err(e);
            }
            ctx.page.find_element("body").await?.type_str(name).await?;
        }
    }
    Ok(())
}

/// Moves the mouse a little, as a person would, so toolbars that hide
/// themselves come back (Zoom's footer) before their absence is judged.
pub(super) async fn wake(ctx: &BotContext, nudge: u32) {
    let point = chromiumoxide::layout::Point {
        x: 400.0 + f64::from(nudge % 2) * 8.0,
        y: 300.0,
    };
    let _ = tokio::time::timeout(CLICK_TIMEOUT, ctx.page.move_mouse(point)).await;
}

/// How long a leave waits for the platform's confirmation to show.
const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Leaves the call: the leave button, then the platform's confirmation if
/// it asks for one. A toolbar that hid itself (Zoom's footer) is woken and
/// the page read again first (with the session's `probe`), so the button is
/// on screen and marked.
pub(super) async fn leave(ctx: &BotContext, platform: Platform, probe: &str) {
    // A page that is gone or hung has nothing left to leave or confirm.
    let read_now = || async {
        match tokio::time::timeout(CLICK_TIMEOUT, read(ctx, probe)).await {
            Ok(Ok(r)) => Some(r.probe),
            _ => None,
        }
    };
    wake(ctx, 0).await;
    wake(ctx, 1).await;
    if read_now().await.is_none() {
        return;
    }
    click(ctx, "leave").await;
    if tables::table(platform).leave_confirm.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + CONFIRM_WAIT;
    while tokio::time::Instant::now() < deadline {
        match read_now().await {
            Some(p) if p.leave_confirm => return click(ctx, "confirm").await,
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            None => return,
        }
    }
}

/// Where the element is, once scrolled into view: `under` the mouse at its
/// centre, `covered` by something else there, or `gone` from the screen
/// since the probe marked it (not to be clicked at all). When it is under
/// the mouse, it notes whether the mouse's click then reaches it.
const WHERE_JS: &str = "function () {
  if (!this.isConnected || !this.getClientRects().length) return 'gone';
  this.scrollIntoView({ block: 'center', inline: 'center' });
  const r = this.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) return 'gone';
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  if (!hit || !(hit === this || this.contains(hit))) return 'covered';
  this.__attacheClicked = false;
  this.addEventListener('click', () => { this.__attacheClicked = true; }, { once: true, capture: true });
  return 'under';
}";

/// Whether the mouse's click reached the element (`false` when an overlay
/// that showed meanwhile took it).
const REACHED_JS: &str = "function () { return this.__attacheClicked === true; }";

/// Clicks what the probe marked `target`: with the mouse where the element
/// is the one under it, else through the DOM (an overlay, a banner or a
/// toast over it would take the mouse's click), and through the DOM too
/// when one that showed meanwhile took the mouse's. A page that does not
/// answer within [`CLICK_TIMEOUT`] is not waited for.
pub(super) async fn click(ctx: &BotContext, target: &str) {
    let sel = format!("[data-attache=\"{target}\"]");
    let clicked = tokio::time::timeout(CLICK_TIMEOUT, async {
        let el = match ctx.page.find_element(sel).await {
            Ok(el) => el,
            Err(e) => {
                if !in_frame(ctx, target, "click").await {
                    tracing::debug!(target, error = %e, "nothing to click");
                }
                return;
            }
        };
        let place = el
            .call_js_fn(WHERE_JS, false)
            .await
            .ok()
            .and_then(|r| r.result.value)
            .and_then(|v| v.as_str().map(str::to_string));
        let done = match place.as_deref() {
            Some("gone") => return tracing::debug!(target, "gone before the click"),
            Some("covered") => {
                tracing::debug!(target, "covered; clicking through the DOM");
                el.call_js_fn("function () { this.click(); }", false)
                    .await
                    .map(|_| ())
            }
            _ => match el.click().await {
                Ok(_) => {
                    let reached = el.call_js_fn(REACHED_JS, false).await.ok();
                    let missed = reached
                        .and_then(|r| r.result.value)
                        .is_some_and(|v| v == serde_json::Value::Bool(false));
                    if missed {
                        // Something that showed between the look and the
                        // click took it: once more, through the DOM.
                        tracing::debug!(target, "the click was taken; clicking through the DOM");
                        el.call_js_fn("function () { this.click(); }", false)
                            .await
                            .map(|_| ())
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = done {
            tracing::debug!(target, error = %e, "click failed");
        }
    })
    .await;
    if clicked.is_err() {
        tracing::debug!(target, "the page did not answer the click");
    }
}
