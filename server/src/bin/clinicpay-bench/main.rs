//! `clinicpay-bench`: measurements the issues ask for, printed with the ceilings measured in the
//! same run. Not a test: it runs the release server as a child process on loopback with a fresh
//! database, loads it with a bounded number of requests, and prints figures.
//!
//!   clinicpay-bench pages   [--db sqlite|postgres]   bills list + dashboard, 50 clients; RSS
//!   clinicpay-bench crypto                            sign / verify / decrypt vs `openssl speed`
//!   clinicpay-bench verify                            notification endpoint, verification only
//!   clinicpay-bench apply   [--db …] [--sessions N] [--runs R]
//!                                                     session creation (20 clients), notification
//!                                                     apply throughput vs the database's ceiling,
//!                                                     charge screen render, RSS
//!   clinicpay-bench flood   [--db …] [--sessions N] [--rate R]
//!                                                     genuine notifications at a fixed rate, alone
//!                                                     and under a junk flood from the same address
//!   clinicpay-bench intake  [--db …] [--bills N]     HIS bill intake, one per call and in batches,
//!                                                     vs a read of the same API; POST → screen event
//!   clinicpay-bench events  [--db …] [--bills N]     HIS voids → signed events at a receiver on
//!                                                     loopback: lag p50/p99 and rate vs the voids
//!   clinicpay-bench refunds [--db …] [--bills N]     paid bills refunded: REST request → finance
//!                                                     approval → provider confirmation, vs a read
//!   clinicpay-bench books   [--db …] [--postings N]  the books grown to N postings (1,000,000):
//!                                                     `clinicpay verify` vs one scan; trial balance
//!                                                     and account pages p50 / p99
//!
//! PostgreSQL runs use `CLINICPAY_BENCH_PG_URL` (default postgres://postgres@127.0.0.1:5432/postgres)
//! to create a fresh database.

// Floats here are timings and rates, never money.
#![allow(clippy::float_arithmetic)]

use anyhow::{bail, Context, Result};
use clinicpay::billing::{price_items, Bill, BillStatus, ItemCategory, NewBillItem, Patient};
use clinicpay::ids::{BillId, PatientId};
use clinicpay::money::Money;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod apply;
mod books;
mod crypto;
mod events;
mod flood;
mod harness;
mod intake;
mod pages;
mod refunds;

use apply::*;
use books::*;
use crypto::*;
use events::*;
use flood::*;
use harness::*;
use intake::*;
use pages::*;
use refunds::*;

/// The sandbox control credential the bench gives the server it starts.
const BENCH_SANDBOX_TOKEN: &str = "bench-sandbox-control-token-0123456789";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let db = arg("--db").unwrap_or_else(|| "sqlite".into());
    match scenario.as_str() {
        "pages" => bench_pages(&db).await,
        "crypto" => bench_crypto(),
        "verify" => bench_verify().await,
        "apply" => bench_apply(&db).await,
        "flood" => bench_flood(&db).await,
        "intake" => bench_intake(&db).await,
        "events" => bench_events(&db).await,
        "refunds" => bench_refunds(&db).await,
        "books" => bench_books(&db).await,
        _ => {
            eprintln!(
                "usage: clinicpay-bench pages|crypto|verify|apply|flood|intake|events|refunds|books [--db sqlite|postgres] [--sessions N] [--runs R] [--rate R]"
            );
            std::process::exit(2)
        }
    }
}
