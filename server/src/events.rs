//! Live session status for the charge screen (C5). Services publish only after a commit; the
//! hub fans out to server-sent-event streams. With PostgreSQL the message goes through
//! `NOTIFY`, so a screen connected to one instance hears about a payment applied by another;
//! with SQLite (one instance) it stays in-process.

use async_trait::async_trait;
use clinicpay::payments::SessionStatus;
use clinicpay::ports::SessionEvents;
use tokio::sync::broadcast;

const CHANNEL: &str = "clinicpay_sessions";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChange {
    pub session_id: String,
    pub status: SessionStatus,
}

pub struct EventHub {
    tx: broadcast::Sender<SessionChange>,
    pg: Option<sqlx::PgPool>,
}

impl EventHub {
    pub fn new(pg: Option<sqlx::PgPool>) -> EventHub {
        let (tx, _) = broadcast::channel(1024);
        EventHub { tx, pg }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SessionChange> {
        self.tx.subscribe()
    }

    fn local(&self, change: SessionChange) {
        let _ = self.tx.send(change);
    }

    /// PostgreSQL: forward every instance's NOTIFYs to this instance's subscribers.
    pub fn spawn_listener(self: &std::sync::Arc<Self>) {
        let Some(pool) = self.pg.clone() else { return };
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut l) => {
                        if let Err(e) = l.listen(CHANNEL).await {
                            tracing::error!(error = %e, "LISTEN failed");
                        } else {
                            while let Ok(n) = l.recv().await {
                                if let Some((id, st)) = n.payload().split_once(' ') {
                                    if let Some(status) = SessionStatus::parse(st) {
                                        me.local(SessionChange { session_id: id.to_string(), status });
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
    async fn publish(&self, session_id: &str, status: SessionStatus) {
        match &self.pg {
            Some(pool) => {
                let payload = format!("{session_id} {}", status.as_str());
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(pool).await
                {
                    tracing::warn!(error = %e, "NOTIFY failed; telling this instance only");
                    self.local(SessionChange { session_id: session_id.to_string(), status });
                }
            }
            None => self.local(SessionChange { session_id: session_id.to_string(), status }),
        }
    }
}
