//! One module per area of the app.

pub mod admin;
pub mod admin_pay;
pub mod bill_entry;
pub mod bills;
pub mod books;
pub mod catalogue;
pub mod charge;
pub mod dashboard;
pub mod exceptions;
pub mod finance;
pub mod login;
pub mod patients;
pub mod receipts;
pub mod refunds;
pub mod shifts;
pub mod webhooks;
