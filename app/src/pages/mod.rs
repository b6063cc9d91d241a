//! One module per area of the app.

pub mod admin;
pub mod bills;
pub mod dashboard;
pub mod login;
pub mod patients;
