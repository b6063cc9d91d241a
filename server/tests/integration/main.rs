//! ClinicPay integration tests: one binary, real databases, real HTTP.

mod books;
mod checkout_http;
mod checkout_store;
mod counter;
mod counter_payments;
mod gw_alipay;
mod gw_bank;
mod gw_wechatpay;
mod hardening;
mod helpers;
mod http_app;
mod intake;
mod receipts;
mod refunds;
mod reliability;
mod shifts;
mod store_contract;
mod upgrade;
mod webhooks;
