//! `opshub bench web`'s case of a thousand viewers: 1,000 live streams open
//! on one server (10 per tenant in 100 tenants, each its own HTTP/1.1
//! connection over TCP, as browsers hold them), while runs change at 200 a
//! second. Prints how long a change takes to reach the last of its tenant's
//! streams, what the open streams cost in memory, and how many database
//! queries the live hub made per change (it loads each change once and fans
//! it out in memory, so that figure must not grow with the streams).

use super::client::Client;
use super::{queued_run, LocalServer};
use crate::domain::*;
use crate::server::store::{self, MembershipAudit, NewUser, RunRecord, Store};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const TENANTS: usize = 100;
const PASSWORD: &str = "bench-password";
/// Runs changed per second while the streams are open.
const CHANGES_PER_SECOND: u64 = 200;
/// Changes made (10 s at the rate above).
const CHANGES: usize = 2_000;

/// A run's event as one stream received it.
struct Arrival {
    run: RunId,
    at: Instant,
}

pub async fn run(streams: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("opshub-bench-viewers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = measure(&format!("sqlite://{}/bench.db", dir.display()), streams).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(url: &str, streams: usize) -> Result<(), String> {
    let fail = |e: store::StoreError| e.to_string();
    let store = store::connect(url, 8).await.map_err(fail)?;
    store.migrate().await.map_err(fail)?;
    let viewers = viewers(store.as_ref()).await?;
    let runs = queued_runs(store.as_ref(), &viewers).await?;

    let server = LocalServer::start(store.clone()).await?;
    let addr = server.addr;

    let mut cookies = Vec::with_capacity(viewers.len());
    for viewer in &viewers {
        let mut client = Client::connect(addr).await?;
        client.sign_in(&viewer.email, PASSWORD).await?;
        cookies.push(client.cookie().ok_or("no session cookie")?.to_string());
    }

    let memory_before = resident_bytes()?;
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let (greetings, mut greeted) = mpsc::unbounded_channel();
    let mut readers = tokio::task::JoinSet::new();
    for stream in 0..streams {
        let tenant = stream % viewers.len();
        let client = Client::connect(addr).await?.with_cookie(&cookies[tenant]);
        let path = live_path(viewers[tenant].slug.as_str());
        readers.spawn(read_stream(
            client,
            path,
            arrivals.clone(),
            greetings.clone(),
        ));
    }
    drop((arrivals, greetings));
    for _ in 0..streams {
        greeted
            .recv()
            .await
            .ok_or("a live stream ended before it opened")??;
    }
    // What the open streams hold once they settled (this process is the
    // server and its clients: the figure is the two halves together).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_stream_kb =
        resident_bytes()?.saturating_sub(memory_before) as f64 / streams as f64 / 1024.0;

    let loads_before = server.live.loads();
    let mut written = HashMap::with_capacity(CHANGES);
    let started = Instant::now();
    let interval = Duration::from_micros(1_000_000 / CHANGES_PER_SECOND);
    for (n, (tenant, run)) in runs.iter().enumerate() {
        tokio::time::sleep_until((started + interval * n as u32).into()).await;
        written.insert(*run, Instant::now());
        store
            .transition_run(*tenant, *run, RunStatus::Running)
            .await
            .map_err(fail)?;
    }
    let rate = runs.len() as f64 / started.elapsed().as_secs_f64();

    // Every stream of a run's tenant must hear of it.
    let per_tenant = streams / viewers.len();
    let mut heard: HashMap<RunId, (usize, Instant)> = HashMap::with_capacity(runs.len());
    let mut complete = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while complete < runs.len() {
        let arrival = match tokio::time::timeout_at(deadline, arrived.recv()).await {
            Ok(Some(arrival)) => arrival,
            Ok(None) | Err(_) => break,
        };
        let entry = heard.entry(arrival.run).or_insert((0, arrival.at));
        entry.0 += 1;
        entry.1 = entry.1.max(arrival.at);
        if entry.0 == per_tenant {
            complete += 1;
        }
    }
    let queries = server.live.loads() - loads_before;
    readers.abort_all();
    server.stop().await;
    if complete < runs.len() {
        return Err(format!(
            "{} of {} changes did not reach all {per_tenant} streams of their tenant within 30 s",
            runs.len() - complete,
            runs.len()
        ));
    }
    let mut latencies: Vec<f64> = heard
        .iter()
        .map(|(run, (_, last))| last.duration_since(written[run]).as_secs_f64() * 1_000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    crate::outln!(
        "  viewers: {streams} live streams open ({per_tenant} in each of {} tenants), {} runs changed at {rate:.0}/s; change to its last stream p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        viewers.len(),
        runs.len(),
        percentile(0.50),
        percentile(0.95),
        percentile(1.0)
    );
    crate::outln!(
        "web streams={streams} changes_per_s={rate:.0} live_last_stream_p95_ms={:.2} kb_per_stream={per_stream_kb:.1} queries_per_change={:.3}",
        percentile(0.95),
        queries as f64 / runs.len() as f64
    );
    Ok(())
}

/// Opens one live stream and reports every run event it carries, until the
/// bench stops it.
async fn read_stream(
    mut client: Client,
    path: String,
    arrivals: mpsc::UnboundedSender<Arrival>,
    greetings: mpsc::UnboundedSender<Result<(), String>>,
) {
    let request = Request::get(path.as_str())
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .expect("a request");
    let response = match client.open(request).await {
        Ok(response) if response.status() == StatusCode::OK => response,
        Ok(response) => {
            let _ = greetings.send(Err(format!("{path} answered {}", response.status())));
            return;
        }
        Err(e) => {
            let _ = greetings.send(Err(e));
            return;
        }
    };
    let mut body = Body::new(response.into_body()).into_data_stream();
    let mut pending = String::new();
    let mut open = false;
    while let Some(Ok(chunk)) = body.next().await {
        let at = Instant::now();
        if !open {
            // The stream's first bytes are its greeting.
            open = true;
            let _ = greetings.send(Ok(()));
        }
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            if let Some(run) = run_event(&event) {
                let _ = arrivals.send(Arrival { run, at });
            }
        }
    }
    if !open {
        let _ = greetings.send(Err(format!("{path} ended before it opened")));
    }
}

/// The run a `run` event (`event: run` + `data: <summary>`) is about.
fn run_event(event: &str) -> Option<RunId> {
    let mut lines = event.lines();
    if lines.next()? != format!("event: {RUN_EVENT}") {
        return None;
    }
    let data = lines.next()?.strip_prefix("data: ")?;
    serde_json::from_str::<RunSummary>(data)
        .ok()
        .map(|run| run.id)
}

/// A tenant and the one viewer who watches it.
struct Viewer {
    slug: TenantSlug,
    tenant: TenantId,
    email: String,
    user: UserId,
}

async fn viewers(store: &dyn Store) -> Result<Vec<Viewer>, String> {
    let fail = |e: store::StoreError| e.to_string();
    let hash = crate::server::auth::hash_password(PASSWORD.into())
        .await
        .map_err(|e| e.to_string())?;
    let mut viewers = Vec::with_capacity(TENANTS);
    for n in 0..TENANTS {
        let slug = TenantSlug::parse(&format!("viewers-{n:03}")).map_err(|e| e.0)?;
        let tenant = store
            .create_tenant(&slug, &format!("Viewers {n}"))
            .await
            .map_err(fail)?;
        let email = format!("viewer-{n:03}@bench.example");
        let user = store
            .create_user(NewUser {
                email: email.clone(),
                display_name: format!("Viewer {n}"),
                password_hash: Some(hash.clone()),
            })
            .await
            .map_err(fail)?;
        store
            .set_membership(tenant.id, user.id, Role::Viewer, MembershipAudit::Unaudited)
            .await
            .map_err(fail)?;
        viewers.push(Viewer {
            slug,
            tenant: tenant.id,
            email,
            user: user.id,
        });
    }
    Ok(viewers)
}

/// `CHANGES` queued runs, the tenants in turn: `(tenant, run)`.
async fn queued_runs(
    store: &dyn Store,
    viewers: &[Viewer],
) -> Result<Vec<(TenantId, RunId)>, String> {
    let now = Timestamp::now();
    let records: Vec<RunRecord> = (0..CHANGES)
        .map(|n| {
            let viewer = &viewers[n % viewers.len()];
            queued_run(
                viewer.tenant,
                viewer.user,
                format!("bench-viewers-{n}"),
                now,
            )
        })
        .collect();
    store
        .insert_run_records(&records)
        .await
        .map_err(|e| e.to_string())?;
    Ok(records.iter().map(|run| (run.tenant_id, run.id)).collect())
}

/// This process's resident memory (Linux).
fn resident_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_run_of_a_run_event_only() {
        let now = Timestamp::now();
        let run = RunSummary {
            id: RunId::generate(),
            tenant_id: TenantId(uuid::Uuid::nil()),
            operation: OperationKind::DriftGenerate,
            status: RunStatus::Running,
            counters: Counters::default(),
            initiator_id: UserId(uuid::Uuid::nil()),
            initiator_name: "Zoë".into(),
            idempotency_key: None,
            created_at: now,
            started_at: Some(now),
            finished_at: None,
            stalled_at: None,
        };
        let data = serde_json::to_string(&run).unwrap();
        assert_eq!(
            run_event(&format!("event: {RUN_EVENT}\ndata: {data}\n\n")),
            Some(run.id)
        );
        assert_eq!(
            run_event(&format!("event: {UNREAD_EVENT}\ndata: 3\n\n")),
            None
        );
        assert_eq!(run_event(": live\n\n"), None);
        assert_eq!(run_event("event: run\ndata: {\"id\": 1}\n\n"), None);
    }
}
