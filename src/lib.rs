//! ClinicPay domain crate: money, ids, billing, payments, ledger and the rules between them.
//!
//! Pure: no IO, no clock, no randomness — it compiles to wasm for the browser and to native for
//! the server. With the `server` feature it also defines the ports (traits the server implements:
//! storage, gateways, clock, id generation, secrets) and the use-case services that run over them.

pub mod auth;
pub mod billing;
pub mod checkout;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod payments;
pub mod time;
pub mod views;

#[cfg(feature = "server")]
pub mod ports;
#[cfg(feature = "server")]
pub mod services;

pub use money::Money;
