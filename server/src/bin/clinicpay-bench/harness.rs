//! The harness every benchmark shares: the release server as a child process on a fresh
//! database, a bounded load generator, percentiles, RSS sampling.

use super::*;

pub(crate) fn pct(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if xs.is_empty() {
        0.0
    } else {
        xs[xs.len() / 2]
    }
}

/// The release server as a child process.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
    pub(crate) db: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

pub(crate) async fn fresh_db(kind: &str, dir: &std::path::Path) -> Result<String> {
    Ok(match kind {
        "sqlite" => format!("sqlite://{}", dir.join("bench.db").display()),
        "postgres" => {
            use sqlx::Connection;
            let admin = std::env::var("CLINICPAY_BENCH_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("clinicpay_bench_{}", std::process::id());
            let mut c = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut c).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await?;
            format!("{}/{name}", admin.rsplit_once('/').map(|x| x.0).unwrap_or(&admin))
        }
        other => bail!("--db must be sqlite or postgres, not {other}"),
    })
}

pub(crate) async fn start_server(kind: &str) -> Result<Server> {
    let dir = std::env::temp_dir().join(format!("clinicpay-bench-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = fresh_db(kind, &dir).await?;
    let exe = std::env::current_exe()?.with_file_name("clinicpay");
    if !exe.exists() {
        bail!("{} not found: build it first (cargo build --release -p server)", exe.display());
    }
    let mut child = Command::new(&exe)
        .arg("serve")
        .env("CLINICPAY_ENV", "development")
        .env("CLINICPAY_SANDBOX_CONTROL_TOKEN", BENCH_SANDBOX_TOKEN)
        .env("CLINICPAY_DATABASE_URL", &db)
        .env("CLINICPAY_DATA_DIR", dir.join("data"))
        .env("CLINICPAY_LISTEN", "127.0.0.1:0")
        .env("CLINICPAY_LOG", "error")
        .env("CLINICPAY_DB_MAX_CONNECTIONS", "16")
        .env("LEPTOS_SITE_ROOT", std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into()))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .spawn()
        .context("starting the server")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("ClinicPay is running at ") => {
                break l.rsplit(' ').next().unwrap_or_default().to_string()
            }
            Some(_) => {}
            None => bail!("the server exited; see {}", dir.join("server.log").display()),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, base, dir, db })
}

/// Posts one signed notification to `/notify/alipay`; true when the server answered `success`.
pub(crate) async fn post_alipay_notification(
    c: &reqwest::Client,
    base: &str,
    headers: &[(String, String)],
    body: impl Into<reqwest::Body>,
) -> bool {
    let mut rb = c.post(format!("{base}/notify/alipay")).body(body);
    for (k, v) in headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    match rb.send().await {
        Ok(r) => r.text().await.is_ok_and(|t| t == "success"),
        Err(_) => false,
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) async fn login(c: &reqwest::Client, base: &str, user: &str, pw: &str) -> Result<String> {
    let r = c
        .post(format!("{base}/auth/login"))
        .header("origin", base)
        .form(&[("username", user), ("password", pw), ("next", "/")])
        .send()
        .await?;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cp_session="))
        .context("no session cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

/// `clients` concurrent loops until `total` requests are done (or `max_time` passes).
pub(crate) async fn load<F, Fut>(
    clients: usize,
    total: usize,
    max_time: Duration,
    f: F,
) -> (Vec<Duration>, Duration, usize)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (f, next, errors) = (f.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total || started.elapsed() > max_time {
                    return lat;
                }
                let t = Instant::now();
                if !f(i).await {
                    errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall, errors.load(std::sync::atomic::Ordering::SeqCst))
}

/// Prints the first few failures of a load run (so an error count is never a mystery).
pub(crate) fn note_error(outcome: std::result::Result<(), String>) -> bool {
    static SHOWN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match outcome {
        Ok(()) => true,
        Err(e) => {
            if SHOWN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
                eprintln!("    error: {e}");
            }
            false
        }
    }
}

pub(crate) fn report(name: &str, lat: &[Duration], wall: Duration, errors: usize) {
    println!(
        "  {name:<44} {:>6} req in {:>6.2}s = {:>8.1}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {errors}",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        pct(lat, 50),
        pct(lat, 99)
    );
}

/// Samples the child's RSS while `fut` runs; returns (result, peak KiB).
pub(crate) async fn with_rss<T>(server: &Server, fut: impl std::future::Future<Output = T>) -> (T, u64) {
    let pid = server.child.id();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p2 = peak.clone();
    let sampler = tokio::spawn(async move {
        loop {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                p2.fetch_max(kb, std::sync::atomic::Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let out = fut.await;
    sampler.abort();
    (out, peak.load(std::sync::atomic::Ordering::SeqCst))
}
