//! ClinicPay server: everything with IO — storage, HTTP, provider gateways and sandboxes,
//! background workers — and the CLI behind the `clinicpay` binary.

#![recursion_limit = "512"]

pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod events;
pub mod gateways;
pub mod http;
pub mod metrics;
pub mod runtime;
pub mod sandbox;
pub mod secrets;
pub mod startup;
pub mod telemetry;
pub mod webhooks;
