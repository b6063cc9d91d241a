//! Merchant-side provider clients (G2): Alipay OpenAPI (RSA2), WeChat Pay APIv3, and our
//! bank-card gateway. Each implements the domain's `Gateway` port over real HTTP (reqwest).

pub mod alipay;
pub mod bank;
pub mod registry;
pub mod wechatpay;

use std::time::Duration;

/// The HTTP client every gateway uses: bounded timeouts, no proxies from the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .no_proxy()
        .user_agent(concat!("ClinicPay/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client")
}
