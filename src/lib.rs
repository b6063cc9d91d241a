//! ClinicPay domain crate: money, ids, billing, payments, ledger and the rules between them.
//!
//! Pure: no IO, no clock, no randomness — it compiles to wasm for the browser and to native for
//! the server. With the `server` feature it also defines the ports (traits the server implements:
//! storage, gateways, clock, id generation, secrets) and the use-case services that run over them.

pub mod auth;
pub mod billing;
pub mod books;
pub mod checkout;
pub mod ids;
pub mod intake;
pub mod ledger;
pub mod money;
pub mod payments;
pub mod receipts;
pub mod refunds;
pub mod shifts;
pub mod time;
pub mod views;
pub mod webhooks;

#[cfg(feature = "server")]
pub mod ports;
#[cfg(feature = "server")]
pub mod services;

pub use money::Money;

/// A stored or received word that names none of an enum's values (a status, a provider, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}: {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// `TryFrom<String>` through the enum's own `parse`, so rows map straight into domain types.
macro_rules! parse_from_string {
    ($ty:ty, $what:literal) => {
        impl TryFrom<String> for $ty {
            type Error = $crate::UnknownValue;
            fn try_from(s: String) -> Result<Self, $crate::UnknownValue> {
                <$ty>::parse(&s).ok_or($crate::UnknownValue { what: $what, value: s })
            }
        }
    };
}
pub(crate) use parse_from_string;
