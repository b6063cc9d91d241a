//! Group commit: requests that arrive while a batch is being written wait and go together in the
//! next one, each in its own savepoint, all in one durable commit. Nobody waits on purpose: an
//! idle system writes batches of one.
//!
//! Supervised: each batch runs in its own task, so a panic while writing one (a bug, a driver
//! fault) fails that batch's callers — they get `None` and answer the provider "fail", which
//! retries — and the worker goes on with the next batch. A worker loop never ends while the
//! batcher is alive (SQLite has exactly one writer: losing it would fail every later payment).

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

pub struct Batcher<I, O> {
    tx: mpsc::Sender<(I, oneshot::Sender<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// `workers` batches may be in flight at once (1 for SQLite's single writer).
    pub fn spawn<F, Fut>(max_batch: usize, workers: usize, process: F) -> Arc<Batcher<I, O>>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<(I, oneshot::Sender<O>)>(max_batch * 16);
        let rx = Arc::new(Mutex::new(rx));
        let process = Arc::new(process);
        for _ in 0..workers.max(1) {
            let rx = rx.clone();
            let process = process.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::with_capacity(max_batch);
                    {
                        let mut rx = rx.lock().await;
                        match rx.recv().await {
                            Some(first) => batch.push(first),
                            None => return,
                        }
                        while batch.len() < max_batch {
                            match rx.try_recv() {
                                Ok(next) => batch.push(next),
                                Err(_) => break,
                            }
                        }
                    }
                    let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
                    match tokio::spawn(process(items)).await {
                        Ok(outputs) => {
                            for (reply, out) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(out);
                            }
                        }
                        // the batch's callers see their reply dropped: `submit` returns None
                        Err(e) => tracing::error!(error = %e, size = replies.len(), "a group-commit batch panicked"),
                    }
                }
            });
        }
        Arc::new(Batcher { tx })
    }

    /// Submits one request and waits for its own result. `None` only if the batcher stopped.
    pub async fn submit(&self, item: I) -> Option<O> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).await.ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_result() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let b = Batcher::spawn(8, 1, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move { items.into_iter().map(|i| i * 10).collect::<Vec<_>>() }
        });
        let mut handles = Vec::new();
        for i in 0..50u32 {
            let b = b.clone();
            handles.push(tokio::spawn(async move { (i, b.submit(i).await) }));
        }
        for h in handles {
            let (i, out) = h.await.unwrap();
            assert_eq!(out, Some(i * 10));
        }
        let sizes = batches.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.iter().all(|s| *s <= 8));
    }

    /// Issue 13 #8: a panic while writing one batch fails only that batch; the single worker
    /// (SQLite's only writer) goes on serving every later request.
    #[tokio::test]
    async fn a_panicking_batch_does_not_end_the_worker() {
        let b = Batcher::spawn(4, 1, |items: Vec<u32>| async move {
            if items.contains(&13) {
                panic!("writer fault");
            }
            items.into_iter().map(|i| i + 1).collect::<Vec<_>>()
        });
        assert_eq!(b.submit(13).await, None, "the failed batch's caller is told");
        for i in 100..120u32 {
            assert_eq!(b.submit(i).await, Some(i + 1), "request {i} after the panic");
        }
        assert_eq!(b.submit(13).await, None, "it fails again, alone");
        assert_eq!(b.submit(7).await, Some(8));
    }
}
