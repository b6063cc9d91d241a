//! ClinicPay integration tests: one binary, real databases, real HTTP.

mod gw_bank;
mod helpers;
mod http_app;
mod store_contract;
