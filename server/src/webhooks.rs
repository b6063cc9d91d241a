//! Posting events to the hospital's systems: one HTTP client, no proxy, no redirects (an
//! endpoint that redirects is an endpoint misconfigured, and following it would send a signed
//! body somewhere nobody registered), a timeout per attempt, the first 500 characters of the
//! answer kept for the delivery log.

use async_trait::async_trait;
use clinicpay::ports::{OutboundRequest, OutboundResult, WebhookTransport};
use std::time::Duration;

const EXCERPT_CHARS: usize = 500;

pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> HttpTransport {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("ClinicPay-Events/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        HttpTransport { client }
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, req: OutboundRequest) -> OutboundResult {
        let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(5_000));
        let mut b = self.client.post(&req.url).timeout(timeout).body(req.body);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let answer = async {
            let resp = b.send().await?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Ok::<_, reqwest::Error>((status, text))
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok((status, text))) => {
                OutboundResult::Answered { status, excerpt: text.chars().take(EXCERPT_CHARS).collect() }
            }
            Ok(Err(e)) if e.is_timeout() => OutboundResult::NoAnswer(format!("no answer within {} ms", req.timeout_ms)),
            Ok(Err(e)) if e.is_connect() => OutboundResult::NoAnswer("could not connect".into()),
            Ok(Err(e)) => OutboundResult::NoAnswer(format!("request failed: {}", short(e))),
            Err(_) => OutboundResult::NoAnswer(format!("no answer within {} ms", req.timeout_ms)),
        }
    }
}

/// The error without the URL (it may carry a query the hospital considers private).
fn short(e: reqwest::Error) -> String {
    e.without_url().to_string().chars().take(200).collect()
}
