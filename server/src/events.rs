//! Live session status for the charge screen (C5). Services publish only after a commit; the
//! hub fans out to server-sent-event streams. With PostgreSQL the message goes through
//! `NOTIFY`, so a screen connected to one instance hears about a payment applied by another;
//! with SQLite (one instance) it stays in-process.

use async_trait::async_trait;
use clinicpay::ids::{PatientId, SessionId};
use clinicpay::payments::SessionStatus;
use clinicpay::ports::SessionEvents;
use tokio::sync::{broadcast, mpsc};

const CHANNEL: &str = "clinicpay_sessions";
/// Patients whose bills changed (payload: the patient id).
const BILLS_CHANNEL: &str = "clinicpay_bills";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChange {
    pub session_id: SessionId,
    pub status: SessionStatus,
}

pub struct EventHub {
    tx: broadcast::Sender<SessionChange>,
    bills: broadcast::Sender<PatientId>,
    pg: Option<sqlx::PgPool>,
    /// PostgreSQL: changes waiting to be sent, several per `NOTIFY` transaction (each such
    /// transaction is a durable commit; one per payment would cost as much as the payment).
    outgoing: mpsc::UnboundedSender<SessionChange>,
    outgoing_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<SessionChange>>>,
}

impl EventHub {
    pub fn new(pg: Option<sqlx::PgPool>) -> EventHub {
        let (tx, _) = broadcast::channel(1024);
        let (bills, _) = broadcast::channel(1024);
        let (outgoing, rx) = mpsc::unbounded_channel();
        EventHub { tx, bills, pg, outgoing, outgoing_rx: std::sync::Mutex::new(Some(rx)) }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SessionChange> {
        self.tx.subscribe()
    }

    /// Patients whose bills changed, as they are committed (on any instance with PostgreSQL).
    pub fn subscribe_bills(&self) -> broadcast::Receiver<PatientId> {
        self.bills.subscribe()
    }

    fn local(&self, change: SessionChange) {
        let _ = self.tx.send(change);
    }

    /// PostgreSQL: send this instance's changes (in batches) and forward every instance's
    /// NOTIFYs to this instance's subscribers.
    pub fn spawn_listener(self: &std::sync::Arc<Self>) {
        let Some(pool) = self.pg.clone() else { return };
        if let Some(mut rx) = self.outgoing_rx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let me = self.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                while let Some(first) = rx.recv().await {
                    let mut batch = vec![first];
                    while batch.len() < 500 {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    let payloads: Vec<String> =
                        batch.iter().map(|c| format!("{} {}", c.session_id, c.status.as_str())).collect();
                    if let Err(e) = sqlx::query("SELECT pg_notify($1, x) FROM UNNEST($2::text[]) AS x")
                        .bind(CHANNEL)
                        .bind(&payloads)
                        .execute(&pool)
                        .await
                    {
                        tracing::warn!(error = %e, "NOTIFY failed; telling this instance only");
                        for c in batch {
                            me.local(c);
                        }
                    }
                }
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut l) => {
                        if let Err(e) = l.listen_all([CHANNEL, BILLS_CHANNEL]).await {
                            tracing::error!(error = %e, "LISTEN failed");
                        } else {
                            while let Ok(n) = l.recv().await {
                                if n.channel() == BILLS_CHANNEL {
                                    if let Ok(p) = PatientId::parse(n.payload()) {
                                        let _ = me.bills.send(p);
                                    }
                                    continue;
                                }
                                if let Some((id, st)) = n.payload().split_once(' ') {
                                    if let (Ok(session_id), Some(status)) =
                                        (SessionId::parse(id), SessionStatus::parse(st))
                                    {
                                        me.local(SessionChange { session_id, status });
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot listen for session changes"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}

#[async_trait]
impl SessionEvents for EventHub {
    async fn publish(&self, session_id: &SessionId, status: SessionStatus) {
        let change = SessionChange { session_id: session_id.clone(), status };
        match &self.pg {
            Some(_) => {
                if let Err(mpsc::error::SendError(change)) = self.outgoing.send(change) {
                    self.local(change);
                }
            }
            None => self.local(change),
        }
    }

    async fn bills_changed(&self, patients: &[PatientId]) {
        if patients.is_empty() {
            return;
        }
        if let Some(pool) = &self.pg {
            let payloads: Vec<String> = patients.iter().map(|p| p.to_string()).collect();
            match sqlx::query("SELECT pg_notify($1, x) FROM UNNEST($2::text[]) AS x")
                .bind(BILLS_CHANNEL)
                .bind(&payloads)
                .execute(pool)
                .await
            {
                Ok(_) => return,
                Err(e) => tracing::warn!(error = %e, "NOTIFY failed; telling this instance only"),
            }
        }
        for p in patients {
            let _ = self.bills.send(p.clone());
        }
    }
}
