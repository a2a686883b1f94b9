//! One shared headless Chromium per worker; one isolated browser context
//! (cookies, storage, its own renderer) per bot. The browser starts with the
//! first bot and is started again if it dies; one bot's failure never
//! restarts the browser under the others.

use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
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
        let mut args: Vec<String> = [
            "disable-gpu",
            "disable-background-networking",
            "disable-component-update",
            "disable-sync",
            "disable-default-apps",
            "disable-extensions",
            "no-first-run",
            "mute-audio",
            "use-fake-ui-for-media-stream",
            "use-fake-device-for-media-stream",
            "autoplay-policy=no-user-gesture-required",
            "lang=en-US",
            // One list: Chromium reads the last --disable-features only.
            // Host ICE candidates for loopback peers; no omnibox popup
            // WebUIs, which new headless preloads in a renderer of their
            // own for every window, so one for every bot.
            "disable-features=WebRtcHideLocalIpsWithMdns,WebUIOmniboxPopup,WebUIOmniboxAimPopup,TranslateUI",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        args.extend(self.config.chromium_args.iter().cloned());
        let cfg = BrowserConfig::builder()
            .chrome_executable(&self.config.chromium)
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
                match browser.new_page(params).await {
                    Ok(page) => Ok((id, page)),
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
