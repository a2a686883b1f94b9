//! One shared headless Chromium per worker; one isolated browser context
//! (cookies, storage, its own renderer) per bot. The browser starts with the
//! worker (or with the first bot, `--browser-on-demand`) and is started
//! again if it dies; one bot's failure never restarts the browser under
//! the others. A context's page takes a few hundred milliseconds to make
//! (a renderer started, a dozen protocol round trips), so a browser
//! started with the worker keeps as many made ahead as pages may load at
//! once. Contexts are made side by side: the pool's lock is held only to
//! start the browser.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, CloseParams, PermissionSetting, SetPermissionParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetLocaleOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::DisableParams as LogDisable;
use chromiumoxide::cdp::browser_protocol::network::DisableParams as NetworkDisable;
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::performance::DisableParams as PerformanceDisable;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BrowserError {
    #[error("cannot start Chromium ({0}): {1}")]
    Launch(String, String),
    #[error("browser: {0}")]
    Cdp(String),
}

struct Running {
    /// Shared with the contexts made in it, which dispose of themselves.
    browser: Arc<Browser>,
    handler: tokio::task::JoinHandle<()>,
    profile: std::path::PathBuf,
}

#[derive(Clone)]
pub(crate) struct BrowserPool {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    running: Arc<Mutex<Option<Running>>>,
    /// Set at shutdown: no browser is started after it.
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// Contexts made ahead (with the browser started at the worker's
    /// start), so that a bot's join does not wait for its page to be made.
    spares: Arc<std::sync::Mutex<Vec<BotContext>>>,
    /// Wakes the task that makes them.
    spare_taken: Arc<tokio::sync::Notify>,
    /// Tracks the browser's event handler.
    tasks: TaskTracker,
    /// The browser's own logs: not those of the bot that happened to start it.
    span: tracing::Span,
}

/// How often a spare context waits to be made while pages load.
const SPARE_WAIT: Duration = Duration::from_millis(200);

/// A bot's private corner of the browser.
pub(crate) struct BotContext {
    browser: Arc<Browser>,
    id: BrowserContextId,
    pub page: Page,
}

impl BrowserPool {
    pub(crate) fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
    ) -> BrowserPool {
        BrowserPool {
            config,
            metrics,
            running: Arc::new(Mutex::new(None)),
            closed: Arc::default(),
            spares: Arc::default(),
            spare_taken: Arc::default(),
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
        self.metrics.browser_starts.inc();
        self.span.in_scope(|| tracing::info!("chromium started"));
        Ok(Running {
            browser: Arc::new(browser),
            handler,
            profile,
        })
    }

    /// Starts the browser now rather than with the first bot, so that the
    /// first bots of a burst do not each wait for it, then keeps `spares`
    /// contexts made ahead, one for each of `joining`'s permits. One is
    /// made only while no page is loading (it would slow that bot's join),
    /// holding one of the permits meanwhile.
    pub(crate) async fn warm(&self, joining: Arc<tokio::sync::Semaphore>, spares: usize) {
        if let Err(e) = self.browser().await
            && !self.closed.load(Ordering::Relaxed)
        {
            tracing::warn!(error = %e, "cannot start Chromium yet; each bot will try again");
        }
        while !self.closed.load(Ordering::Relaxed) {
            if self.spares.lock().expect("spares").len() >= spares {
                self.spare_taken.notified().await;
                continue;
            }
            let idle = if joining.available_permits() == spares {
                joining.try_acquire().ok()
            } else {
                None
            };
            let Some(_loading) = idle else {
                tokio::time::sleep(SPARE_WAIT).await;
                continue;
            };
            match self.fresh().await {
                Ok(c) if !self.closed.load(Ordering::Relaxed) => {
                    let mut have = self.spares.lock().expect("spares");
                    have.push(c);
                    self.metrics.spare_pages.set(have.len() as i64);
                }
                Ok(c) => c.close().await,
                Err(e) => {
                    tracing::debug!(error = %e, "no spare context; trying again shortly");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// The running browser, started if there is none.
    async fn browser(&self) -> Result<Arc<Browser>, BrowserError> {
        let mut guard = self.running.lock().await;
        if self.closed.load(Ordering::Relaxed) {
            return Err(BrowserError::Cdp("the worker is shutting down".into()));
        }
        if guard.is_none() {
            *guard = Some(self.launch().await?);
        }
        Ok(guard.as_ref().expect("running").browser.clone())
    }

    /// An isolated context with one blank page, for one bot: one made
    /// ahead if there is one, in the browser running now.
    pub(crate) async fn context(&self) -> Result<BotContext, BrowserError> {
        let spare = {
            let mut have = self.spares.lock().expect("spares");
            let spare = have.pop();
            self.metrics.spare_pages.set(have.len() as i64);
            spare
        };
        self.spare_taken.notify_one();
        if let Some(c) = spare {
            let live =
                self.running.lock().await.as_ref().is_some_and(|r| {
                    Arc::ptr_eq(&r.browser, &c.browser) && !r.handler.is_finished()
                });
            if live {
                return Ok(c);
            }
            c.close().await;
        }
        self.fresh().await
    }

    /// A context made now.
    async fn fresh(&self) -> Result<BotContext, BrowserError> {
        for attempt in 0..2 {
            let browser = self.browser().await?;
            match made(&browser).await {
                Ok((id, page)) => return Ok(BotContext { browser, id, page }),
                Err(e) if attempt == 0 && self.replace_if_gone(&browser).await => {
                    tracing::warn!(error = %e, "browser unusable; starting a new one");
                }
                Err(e) => return Err(BrowserError::Cdp(e.to_string())),
            }
        }
        unreachable!("two attempts")
    }

    /// Lets go of the spare contexts (their browser is going), and says so.
    fn drop_spares(&self) {
        let spares = std::mem::take(&mut *self.spares.lock().expect("spares"));
        self.metrics.spare_pages.set(0);
        drop(spares);
    }

    /// Drops `browser` from the pool if it is gone (its connection ended),
    /// so that the next context starts a new one; a browser that still
    /// answers stays: the other bots in it are still in their meetings.
    async fn replace_if_gone(&self, browser: &Arc<Browser>) -> bool {
        let mut guard = self.running.lock().await;
        let gone = match guard.as_ref() {
            // Another bot has replaced it already.
            Some(r) if !Arc::ptr_eq(&r.browser, browser) => return true,
            Some(r) => r.handler.is_finished(),
            None => return true,
        };
        if gone && let Some(r) = guard.take() {
            // Spares made in it went with it.
            self.drop_spares();
            self.stop(r).await;
        }
        gone
    }

    pub(crate) async fn shutdown(&self) {
        let mut guard = self.running.lock().await;
        self.closed.store(true, Ordering::Relaxed);
        self.spare_taken.notify_one();
        self.drop_spares();
        if let Some(r) = guard.take() {
            self.stop(r).await;
        }
    }

    async fn stop(&self, r: Running) {
        match Arc::try_unwrap(r.browser) {
            Ok(mut browser) => {
                let _ = browser.close().await;
                let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
                let _ = browser.kill().await;
            }
            // Contexts still hold it (a browser gone under its bots): it is
            // told to close, and its process is killed with the last of
            // them.
            Err(browser) => {
                let _ = browser.execute(CloseParams::default()).await;
            }
        }
        r.handler.abort();
        let profile = r.profile;
        let _ = self
            .tasks
            .spawn_blocking(move || std::fs::remove_dir_all(profile))
            .await;
    }
}

/// A context and its blank page, ready for a bot; nothing left behind if
/// either cannot be made.
async fn made(browser: &Browser) -> chromiumoxide::error::Result<(BrowserContextId, Page)> {
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
    // The client turns these on for every page; nothing here reads them,
    // and the browser would encode and send each metric and log line.
    page.execute(PerformanceDisable::default()).await?;
    page.execute(LogDisable::default()).await?;
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
    /// Stops the browser sending the page's network events (every request,
    /// response and WebSocket message of the meeting's client), once the
    /// client's own navigation, which waits on them, has loaded.
    pub(crate) async fn quiet_network(&self) {
        if let Err(e) = self.page.execute(NetworkDisable::default()).await {
            tracing::debug!(error = %e, "network events left on");
        }
    }

    /// Closes the page and throws the context (and everything in it) away;
    /// a hung page is not waited for long, disposing of its context ends it.
    pub(crate) async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.page.close()).await;
        let _ = self.browser.dispose_browser_context(self.id).await;
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
