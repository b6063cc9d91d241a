//! ClinicPay integration tests: one binary, real databases, real HTTP.

mod gw_wechatpay;
mod helpers;
mod http_app;
mod store_contract;
