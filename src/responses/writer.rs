//! The group-commit writer of every durable write that answers a request: single responses
//! (with their audit and outbox events) and the audit events of reads. Requests queue; a
//! writer task takes everything queued (up to `RAPPORT_WRITE_BATCH`), writes it with one
//! statement (`store::insert_group_audited`, atomic by itself) on a connection of its own,
//! and answers each request after the commit. Nothing waits on a timer: an idle writer
//! commits a single request at once, and groups grow only while commits are under way.
//! `RAPPORT_WRITERS` tasks (default 2) take turns at the queue, so one group's statement
//! and WAL flush overlap the next group's instead of queueing behind them.
//!
//! Each request gets what it would have got alone: a row whose `external_id` is already
//! stored (before, or by an earlier row of the same group) comes back `None`, and the
//! caller resolves it as a duplicate or a conflict. A group that fails for another reason
//! than the database is written again row by row, so one bad row fails only its own
//! request; a lost database fails the group with 503 and acknowledges nothing.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use super::store::AuditRecord;
use super::store::{self, AdministrationRow, NewAdministrationRow};
use crate::db::DbPool;
use crate::error::{ApiError, ApiResult};

type Reply = oneshot::Sender<ApiResult<Option<AdministrationRow>>>;

/// A single response to store.
struct ResponseJob {
    row: NewAdministrationRow,
    actor: String,
    reply: Reply,
}

struct AuditJob {
    event: AuditRecord,
    reply: oneshot::Sender<ApiResult<()>>,
}

enum Job {
    // Boxed: a prepared row is far larger than a read event.
    Response(Box<ResponseJob>),
    Audit(AuditJob),
}

/// The handle requests hold (cheap to clone).
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts `writers` writer tasks over `pool` (a pool of its own, a connection per
    /// task), each taking at most `batch` requests per transaction.
    pub fn start(pool: DbPool, writers: usize, batch: usize, group_sizes: prometheus::Histogram) -> Writer {
        let (queue, jobs) = mpsc::unbounded_channel();
        let jobs = std::sync::Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..writers.max(1) {
            tokio::spawn(run(pool.clone(), jobs.clone(), batch.max(1), group_sizes.clone()));
        }
        Writer { queue }
    }

    /// Stores one row with its audit and outbox events once its group has committed:
    /// the stored row, or `None` when its external_id was already stored.
    pub async fn insert(&self, row: NewAdministrationRow, actor: &str) -> ApiResult<Option<AdministrationRow>> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Response(Box::new(ResponseJob {
            row,
            actor: actor.to_string(),
            reply,
        })))?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records a read's audit event once its group has committed.
    pub async fn audit(&self, event: AuditRecord) -> ApiResult<()> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Audit(AuditJob { event, reply }))?;
        answer.await.map_err(|_| stopped())?
    }

    fn enqueue(&self, job: Job) -> ApiResult<()> {
        self.queue.send(job).map_err(|_| stopped())
    }
}

fn stopped() -> ApiError {
    ApiError::unavailable(std::io::Error::other("the writer has stopped"))
}

/// One writer task: takes its turn at the queue (the group is everything queued when its
/// first job arrived, up to `batch`), lets go of the queue, then writes the group.
async fn run(
    pool: DbPool,
    jobs: std::sync::Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    batch: usize,
    group_sizes: prometheus::Histogram,
) {
    loop {
        let group = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else { return };
            let mut group = vec![first];
            while group.len() < batch {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            group
        };
        group_sizes.observe(group.len() as f64);
        write(&pool, group).await;
    }
}

/// Writes one group and answers each of its requests.
async fn write(pool: &DbPool, group: Vec<Job>) {
    let mut responses = Vec::new();
    let mut reads = Vec::new();
    for job in group {
        match job {
            Job::Response(j) => responses.push(*j),
            Job::Audit(j) => reads.push(j),
        }
    }
    let mut conn = match crate::db::conn(pool).await {
        Ok(conn) => conn,
        Err(_) => return fail_all(responses, reads),
    };
    let rows: Vec<&NewAdministrationRow> = responses.iter().map(|j| &j.row).collect();
    let actors: Vec<&str> = responses.iter().map(|j| j.actor.as_str()).collect();
    let events: Vec<&AuditRecord> = reads.iter().map(|j| &j.event).collect();
    // One statement: atomic without BEGIN/COMMIT round trips.
    let written = store::insert_group_audited(&mut conn, &rows, &actors, &events)
        .await
        .map(|stored| {
            stored
                .into_iter()
                .map(|r| (r.id, r))
                .collect::<HashMap<Uuid, AdministrationRow>>()
        });
    match written {
        Ok(mut stored) => {
            for job in responses {
                let _ = job.reply.send(Ok(stored.remove(&job.row.id)));
            }
            for job in reads {
                let _ = job.reply.send(Ok(()));
            }
        }
        Err(e) if crate::error::is_connection_loss(&e) => fail_all(responses, reads),
        // Not the database: some row failed. Each on its own, so only that one fails.
        Err(_) => {
            for job in responses {
                let alone = store::insert_group_audited(&mut conn, &[&job.row], &[job.actor.as_str()], &[])
                    .await
                    .map(|mut stored| stored.pop())
                    .map_err(ApiError::from);
                let _ = job.reply.send(alone);
            }
            for job in reads {
                let alone = store::insert_group_audited(&mut conn, &[], &[], &[&job.event])
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from);
                let _ = job.reply.send(alone);
            }
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::unavailable(std::io::Error::other("the database is unavailable to the writer"))
}

fn fail_all(responses: Vec<ResponseJob>, reads: Vec<AuditJob>) {
    for job in responses {
        let _ = job.reply.send(Err(unavailable()));
    }
    for job in reads {
        let _ = job.reply.send(Err(unavailable()));
    }
}
