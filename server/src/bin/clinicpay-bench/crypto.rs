//! Signing, verification and decryption against `openssl speed`; the notification endpoint's
//! verification alone.

use super::*;

pub(crate) fn openssl_speed() -> Option<(f64, f64)> {
    let out = Command::new("openssl").args(["speed", "-seconds", "2", "rsa2048"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.trim_start().starts_with("rsa 2048") || l.trim_start().starts_with("rsa  2048"))?;
    let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    // columns: bits, sign (s), verify (s), sign/s, verify/s — take the last two
    let n = nums.len();
    (n >= 2).then(|| (nums[n - 2], nums[n - 1]))
}

pub(crate) fn bench_crypto() -> Result<()> {
    use server::crypto::{aes_gcm_decrypt, aes_gcm_encrypt, PrivateKey};
    let key = PrivateKey::generate()?;
    let public = key.public_key();
    let msg = b"app_id=2021000000000001&biz_content={\"out_trade_no\":\"T1\",\"total_amount\":\"88.88\"}&charset=utf-8&method=alipay.trade.precreate";
    let sig = key.sign_sha256(msg);
    let per_sec = |f: &dyn Fn()| {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_secs(2) {
            for _ in 0..50 {
                f();
            }
            n += 50;
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let sign = per_sec(&|| {
        std::hint::black_box(key.sign_sha256(msg));
    });
    let verify = per_sec(&|| {
        assert!(public.verify_sha256(msg, &sig));
    });
    let k = [7u8; 32];
    let pt = vec![1u8; 1024];
    let ct = aes_gcm_encrypt(&k, b"0123456789ab", b"transaction", &pt)?;
    let dec = per_sec(&|| {
        std::hint::black_box(aes_gcm_decrypt(&k, b"0123456789ab", b"transaction", &ct).expect("decrypt"));
    });
    println!("crypto, one core (aws-lc-rs behind server::crypto):");
    println!("  RSA-2048 PKCS#1 v1.5 SHA-256 sign    {sign:>10.0}/s");
    println!("  RSA-2048 PKCS#1 v1.5 SHA-256 verify  {verify:>10.0}/s");
    println!("  AES-256-GCM decrypt 1 KiB            {dec:>10.0}/s ({:.2} µs each)", 1e6 / dec);
    match openssl_speed() {
        Some((s, v)) => println!(
            "  openssl speed rsa2048 (same run):     sign {s:.0}/s verify {v:.0}/s  → ours {:.2}× sign, {:.2}× verify (goal ≥ 0.9×)",
            sign / s,
            verify / v
        ),
        None => println!("  openssl speed rsa2048: openssl not available"),
    }
    Ok(())
}

/// The notification endpoint's verification alone: an axum route running the real Alipay
/// client's `verify_notification` (no database), loaded with pre-signed notifications.
pub(crate) async fn bench_verify() -> Result<()> {
    use clinicpay::ports::{Gateway, RawNotification};
    use server::sandbox::SandboxControl;
    let settings = server::sandbox::SandboxSettings {
        base_url: "http://127.0.0.1:1".into(),
        time_scale_permille: 1000,
        key_dir: None,
        state_file: None,
    };
    let sb = server::sandbox::Sandboxes::new(settings).await?;
    let merchant = server::crypto::PrivateKey::generate()?;
    let alipay_pk = sb.alipay.register_app("2021000000001234", &merchant.public_key().to_pem()).await?;
    let gw: Arc<dyn Gateway> = Arc::new(server::gateways::alipay::AlipayClient::new(
        server::gateways::alipay::AlipaySettings {
            app_id: "2021000000001234".into(),
            gateway_url: "http://127.0.0.1:1/gateway.do".into(),
            alipay_public_key: alipay_pk,
            seller_id: None,
        },
        &merchant.to_pkcs8_pem(),
        server::gateways::http_client(),
    )?);
    // pre-signed notifications: precreate + pay trades at the sandbox's own gateway over a local router
    let app = sb.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let gw_sb = server::gateways::alipay::AlipayClient::new(
        server::gateways::alipay::AlipaySettings {
            app_id: "2021000000001234".into(),
            gateway_url: format!("{sandbox_base}/sandbox/alipay/gateway.do"),
            alipay_public_key: sb.alipay.public_key_pem(),
            seller_id: None,
        },
        &merchant.to_pkcs8_pem(),
        server::gateways::http_client(),
    )?;
    let n = 5_000;
    let mut bodies = Vec::with_capacity(n);
    for i in 0..200 {
        let no = format!("VB{i:08}");
        let call = gw_sb
            .create_payment(&clinicpay::ports::CreatePayment {
                out_trade_no: no.clone(),
                amount: Money::parse("12.34")?,
                subject: "bench".into(),
                method: clinicpay::payments::PayMethod::AlipayQr,
                expires_at_ms: chrono::Utc::now().timestamp_millis() + 3_600_000,
                notify_url: "http://127.0.0.1:1/notify/alipay".into(),
                return_url: None,
                payer_openid: None,
                payer_ip: None,
            })
            .await;
        if !call.outcome.is_success() {
            bail!("precreate failed: {:?}", call.outcome);
        }
        sb.alipay.set_faults(&no, server::sandbox::FaultSpec { drop: true, ..Default::default() }).await?;
        sb.alipay.pay(&no).await?;
        bodies.push(sb.alipay.signed_success_notification(&no).await?);
    }
    let verify_router = axum::Router::new().route(
        "/notify/alipay",
        axum::routing::post({
            let gw = gw.clone();
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let gw = gw.clone();
                async move {
                    let raw = RawNotification {
                        headers: vec![],
                        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").into(),
                        body: body.to_vec(),
                    };
                    let ok = gw.verify_notification(&raw, chrono::Utc::now().timestamp_millis()).is_ok();
                    let reply = gw.notify_reply(ok);
                    (axum::http::StatusCode::from_u16(reply.status).unwrap_or(axum::http::StatusCode::OK), reply.body)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, verify_router).await;
    });
    let c = client();
    let bodies = Arc::new(bodies);
    let (lat, wall, errors) = load(32, n, Duration::from_secs(30), move |i| {
        let (c, base, bodies) = (c.clone(), base.clone(), bodies.clone());
        async move {
            let (h, b) = &bodies[i % bodies.len()];
            post_alipay_notification(&c, &base, h, b.clone()).await
        }
    })
    .await;
    println!("notification endpoint, verification only (Alipay RSA2, handler no-op; server and load in one process on 2 cores):");
    report("POST /notify/alipay, 32 concurrent", &lat, wall, errors);
    Ok(())
}
