//! The bot's eyes and hands on the meeting page: one read of the page by
//! the probe script against the platform's table, and the typing and
//! clicks the flow asks for. Elements are acted on through the marks the
//! probe leaves on them (`data-attache`); platform selectors live in the
//! tables alone.

use attache_protocol::Platform;
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
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
    #[error("no {0} on the page")]
    Missing(&'static str),
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

/// Acts on what the probe marked `name` (`data-attache`), in the page or
/// in one of its same-origin frames (where a client such as Zoom's runs),
/// in one evaluation:
/// - `where`: where it is once scrolled into view: `under` the mouse at
///   its centre (`x`, `y`; the click it then gets is noted), `covered` by
///   something else there, `framed` (in a frame: clicked through the DOM),
///   or `gone` (not on screen since the probe marked it);
/// - `reached`: whether the mouse's click reached it (`missed` when an
///   overlay that showed meanwhile took it);
/// - `click`: clicks it through the DOM;
/// - `focus`: focuses it and selects its text, so an edit replaces it.
const ACT_JS: &str = "(name, act) => {
  const find = (doc, framed) => {
    const el = doc.querySelector(`[data-attache=\"${name}\"]`);
    if (el && el.isConnected && el.getClientRects().length) return { el, framed };
    for (const f of doc.querySelectorAll('iframe')) {
      let d;
      try { d = f.contentDocument; } catch (e) { continue; }
      const found = d && find(d, true);
      if (found) return found;
    }
    return null;
  };
  const found = find(document, false);
  if (!found) return { place: 'gone' };
  const el = found.el;
  if (act === 'focus') { el.focus(); if (el.select) el.select(); return { place: 'focused' }; }
  if (act === 'click') { el.click(); return { place: 'clicked' }; }
  if (act === 'reached') return { place: el.__attacheClicked === true ? 'reached' : 'missed' };
  if (found.framed) return { place: 'framed' };
  let r = el.getBoundingClientRect();
  if (r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) {
    el.scrollIntoView({ block: 'center', inline: 'center' });
    r = el.getBoundingClientRect();
  }
  if (r.width === 0 && r.height === 0) return { place: 'gone' };
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  if (!hit || !(hit === el || el.contains(hit))) return { place: 'covered' };
  el.__attacheClicked = false;
  el.addEventListener('click', () => { el.__attacheClicked = true; }, { once: true, capture: true });
  return { place: 'under', x, y };
}";

/// What [`ACT_JS`] found.
#[derive(Debug, Deserialize)]
struct Acted {
    place: String,
    #[serde(default)]
    x: f64,
    #[serde(default)]
    y: f64,
}

/// Runs [`ACT_JS`]'s `what` on `target`; `None` if the page did not
/// answer.
async fn act(ctx: &BotContext, target: &str, what: &str) -> Option<Acted> {
    let js = format!(
        "({ACT_JS})({}, {})",
        serde_json::to_string(target).expect("a name serializes"),
        serde_json::to_string(what).expect("a name serializes")
    );
    match ctx.page.evaluate(js).await {
        Ok(r) => r.into_value().ok(),
        Err(e) => {
            tracing::debug!(target, what, error = %e, "the page did not answer");
            None
        }
    }
}

/// Puts the bot's name in the name field: focused rather than clicked (a
/// banner over the field would take the click), its text selected, and
/// the name inserted as one edit (`Input.insertText`, as a paste or an
/// input method would), which fires the field's input events at once and
/// takes any letter, where keys typed one by one cost a round trip each
/// and exist only for a keyboard's characters. The edit goes to whatever
/// has the focus, in a frame too.
pub(super) async fn type_name(ctx: &BotContext, name: &str) -> Result<(), PageError> {
    let focused = tokio::time::timeout(CLICK_TIMEOUT, act(ctx, "name", "focus")).await;
    match focused {
        Ok(Some(a)) if a.place == "focused" => {}
        _ => return Err(PageError::Missing("name field")),
    }
    ctx.page.execute(InsertTextParams::new(name)).await?;
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

/// Clicks what the probe marked `target`: with the mouse where the element
/// is the one under it, else through the DOM (an overlay, a banner or a
/// toast over it would take the mouse's click; in a frame, the mouse's
/// point would be the frame's), and through the DOM too when one that
/// showed meanwhile took the mouse's. A page that does not answer within
/// [`CLICK_TIMEOUT`] is not waited for.
pub(super) async fn click(ctx: &BotContext, target: &str) {
    let clicked = tokio::time::timeout(CLICK_TIMEOUT, async {
        let Some(found) = act(ctx, target, "where").await else {
            return;
        };
        match found.place.as_str() {
            "under" => {
                let point = chromiumoxide::layout::Point {
                    x: found.x,
                    y: found.y,
                };
                if let Err(e) = ctx.page.click(point).await {
                    return tracing::debug!(target, error = %e, "click failed");
                }
                if act(ctx, target, "reached")
                    .await
                    .is_some_and(|a| a.place == "missed")
                {
                    // Something that showed between the look and the
                    // click took it: once more, through the DOM.
                    tracing::debug!(target, "the click was taken; clicking through the DOM");
                    act(ctx, target, "click").await;
                }
            }
            "covered" | "framed" => {
                tracing::debug!(target, place = %found.place, "clicking through the DOM");
                act(ctx, target, "click").await;
            }
            _ => tracing::debug!(target, "nothing to click"),
        }
    })
    .await;
    if clicked.is_err() {
        tracing::debug!(target, "the page did not answer the click");
    }
}
