//! One shared headless Chromium per worker; one isolated browser context
//! (cookies, storage, its own renderer) per bot. The browser starts with the
//! first bot and is started again if it dies; one bot's failure never
//! restarts the browser under the others.

use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, PermissionSetting, SetPermissionParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetLocaleOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BrowserError {
    #[error("cannot start Chromium ({0}): {1}")]
    Launch(String, String),
    #[error("browser: {0}")]
    Cdp(String),
}

struct Running {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    profile: std::path::PathBuf,
}

#[derive(Clone)]
pub(crate) struct BrowserPool {
    config: Arc<Config>,
    running: Arc<Mutex<Option<Running>>>,
    /// Tracks the browser's event handler.
    tasks: TaskTracker,
    /// The browser's own logs: not those of the bot that happened to start it.
    span: tracing::Span,
}

/// A bot's private corner of the browser.
pub(crate) struct BotContext {
    pool: BrowserPool,
    id: BrowserContextId,
    pub page: Page,
}

impl BrowserPool {
    pub(crate) fn new(config: Arc<Config>, tasks: TaskTracker) -> BrowserPool {
        BrowserPool {
            config,
            running: Arc::new(Mutex::new(None)),
            tasks,
            span: tracing::info_span!("browser"),
        }
    }

    async fn launch(&self) -> Result<Running, BrowserError> {
        let profile =
            std::env::temp_dir().join(format!("attache-chromium-{}", uuid::Uuid::new_v4()));
        let args = chromium_flags(&self.config.chromium_args);
        let cfg = BrowserConfig::builder()
            .chrome_executable(&self.config.chromium)
            .disable_default_args()
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(&profile)
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(30))
            .args(args)
            .build()
            .map_err(|e| BrowserError::Launch(self.config.chromium.display().to_string(), e))?;
        let (browser, mut handler) = Browser::launch(cfg).await.map_err(|e| {
            BrowserError::Launch(self.config.chromium.display().to_string(), e.to_string())
        })?;
        let handler = self.tasks.spawn(
            async move {
                // Chromium speaks newer CDP than any client knows; unknown
                // messages are errors here and are not fatal.
                while let Some(r) = handler.next().await {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "cdp");
                    }
                }
            }
            .instrument(self.span.clone()),
        );
        self.span.in_scope(|| tracing::info!("chromium started"));
        Ok(Running {
            browser,
            handler,
            profile,
        })
    }

    /// A fresh isolated context with one blank page.
    pub(crate) async fn context(&self) -> Result<BotContext, BrowserError> {
        let mut guard = self.running.lock().await;
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(self.launch().await?);
            }
            let browser = &guard.as_ref().expect("running").browser;
            let made = async {
                let id = browser
                    .create_browser_context(CreateBrowserContextParams::default())
                    .await?;
                let params = CreateTargetParams::builder()
                    .url("about:blank")
                    .browser_context_id(id.clone())
                    .build()
                    .map_err(chromiumoxide::error::CdpError::msg)?;
                let page = match browser.new_page(params).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = browser.dispose_browser_context(id).await;
                        return Err(e);
                    }
                };
                match present(browser, &id, &page).await {
                    Ok(()) => Ok((id, page)),
                    Err(e) => {
                        let _ = browser.dispose_browser_context(id).await;
                        Err(e)
                    }
                }
            }
            .await;
            match made {
                Ok((id, page)) => {
                    return Ok(BotContext {
                        pool: self.clone(),
                        id,
                        page,
                    });
                }
                // Start a new browser only if this one is gone: the other
                // bots in it are still in their meetings.
                Err(e)
                    if attempt == 0 && guard.as_ref().is_some_and(|r| r.handler.is_finished()) =>
                {
                    tracing::warn!(error = %e, "browser unusable; starting a new one");
                    if let Some(r) = guard.take() {
                        self.stop(r).await;
                    }
                }
                Err(e) => return Err(BrowserError::Cdp(e.to_string())),
            }
        }
        unreachable!("two attempts")
    }

    pub(crate) async fn shutdown(&self) {
        if let Some(r) = self.running.lock().await.take() {
            self.stop(r).await;
        }
    }

    async fn stop(&self, mut r: Running) {
        let _ = r.browser.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), r.browser.wait()).await;
        let _ = r.browser.kill().await;
        r.handler.abort();
        let profile = r.profile;
        let _ = self
            .tasks
            .spawn_blocking(move || std::fs::remove_dir_all(profile))
            .await;
    }
}

/// The bot's devices and language, set before its page loads anything:
/// microphone and camera granted (platforms that deliver no remote audio
/// to a page without them), the silent microphone and absent camera of
/// `devices.js` in every frame, and the UI language in the page's locale
/// as well as in `--lang` and `--accept-lang`.
async fn present(
    browser: &Browser,
    context: &BrowserContextId,
    page: &Page,
) -> chromiumoxide::error::Result<()> {
    for permission in ["microphone", "camera"] {
        let grant = SetPermissionParams::builder()
            .permission(permission)
            .setting(PermissionSetting::Granted)
            .browser_context_id(context.clone())
            .build()
            .map_err(chromiumoxide::error::CdpError::msg)?;
        browser.execute(grant).await?;
    }
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(DEVICES_JS))
        .await?;
    let locale = SetLocaleOverrideParams::builder().locale(LANG).build();
    page.execute(locale).await?;
    Ok(())
}

const DEVICES_JS: &str = include_str!("devices.js");
/// The UI language bots ask platforms for.
const LANG: &str = "en-US";

/// Chromium's flags, without leading dashes: ours, then the operator's
/// (`--chromium-arg`). Each flag is given once: an operator's flag replaces
/// ours, except the feature lists, which are joined (Chromium reads only
/// the last `--disable-features`, so two would drop one).
const FLAGS: &[&str] = &[
    "disable-gpu",
    "disable-background-networking",
    "disable-background-timer-throttling",
    "disable-backgrounding-occluded-windows",
    "disable-renderer-backgrounding",
    "disable-breakpad",
    "disable-client-side-phishing-detection",
    "disable-component-extensions-with-background-pages",
    "disable-component-update",
    "disable-default-apps",
    "disable-dev-shm-usage",
    "disable-hang-monitor",
    "disable-ipc-flooding-protection",
    "disable-popup-blocking",
    "disable-prompt-on-repost",
    "disable-sync",
    "enable-automation",
    "force-color-profile=srgb",
    "metrics-recording-only",
    "password-store=basic",
    "use-mock-keychain",
    "no-first-run",
    "mute-audio",
    // Permission prompts are answered yes; there are no fake capture
    // devices (their tone and test pattern would reach the meeting): the
    // page sees the silent microphone of devices.js.
    "use-fake-ui-for-media-stream",
    "autoplay-policy=no-user-gesture-required",
    "lang=en-US",
    "accept-lang=en-US,en",
    "enable-features=NetworkService,NetworkServiceInProcess",
    // Host ICE candidates for loopback peers; no omnibox popup WebUIs,
    // which new headless preloads in a renderer of their own for every
    // window, that is for every bot.
    "disable-features=TranslateUI,WebRtcHideLocalIpsWithMdns,WebUIOmniboxPopup,WebUIOmniboxAimPopup",
];
const LISTS: &[&str] = &[
    "enable-features",
    "disable-features",
    "enable-blink-features",
    "disable-blink-features",
];

fn chromium_flags(extra: &[String]) -> Vec<String> {
    let mut flags: Vec<(String, Vec<String>)> = Vec::new();
    for flag in FLAGS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        let flag = flag.trim_start_matches('-');
        let (key, values) = match flag.split_once('=') {
            Some((k, v)) => (k, v.split(',').map(String::from).collect()),
            None => (flag, Vec::new()),
        };
        match flags.iter_mut().find(|(k, _)| k == key) {
            Some((_, have)) if LISTS.contains(&key) => {
                for v in values {
                    if !have.contains(&v) {
                        have.push(v);
                    }
                }
            }
            Some((_, have)) => *have = values,
            None => flags.push((key.to_string(), values)),
        }
    }
    flags
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k
            } else {
                format!("{k}={}", v.join(","))
            }
        })
        .collect()
}

impl BotContext {
    /// Closes the page and throws the context (and everything in it) away;
    /// a hung page is not waited for long, disposing of its context ends it.
    pub(crate) async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.page.close()).await;
        if let Some(r) = self.pool.running.lock().await.as_ref() {
            let _ = r.browser.dispose_browser_context(self.id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(extra: &[&str]) -> Vec<String> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        chromium_flags(&extra)
    }

    #[test]
    fn each_flag_is_given_once_and_feature_lists_are_joined() {
        let flags = rendered(&[
            "disable-features=Foo",
            "lang=de",
            "--renderer-process-limit=4",
        ]);
        let disable: Vec<&String> = flags
            .iter()
            .filter(|f| f.starts_with("disable-features="))
            .collect();
        assert_eq!(disable.len(), 1, "{flags:?}");
        for feature in [
            "TranslateUI",
            "WebRtcHideLocalIpsWithMdns",
            "WebUIOmniboxPopup",
            "Foo",
        ] {
            assert!(disable[0].contains(feature), "{feature} in {}", disable[0]);
        }
        let lang: Vec<&String> = flags.iter().filter(|f| f.starts_with("lang=")).collect();
        assert_eq!(lang, ["lang=de"], "the operator's flag wins");
        assert!(flags.iter().any(|f| f == "renderer-process-limit=4"));
        assert_eq!(
            flags.iter().filter(|f| *f == "mute-audio").count(),
            1,
            "{flags:?}"
        );
    }
}
