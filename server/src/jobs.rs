//! The workers of the persistent job queue (`store::jobs`). Each claims one
//! due job at a time under a lease, renews the lease while the job runs, and
//! records the outcome; expired leases (a server that died mid-job) are
//! reaped so that the job runs again. Written for this queue rather than
//! taken from a crate: the one crate serving both SQLite and PostgreSQL on
//! sqlx 0.8 (apalis 0.7) requeues every instance's running jobs whenever any
//! worker starts, which runs jobs twice with several servers.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tracing::Instrument;

use crate::core::Core;
use crate::store::JobRow;

/// How long a claim lasts without renewal: long enough that a renewal or
/// two may fail (the database busy a moment) before a job must stop.
const LEASE: Duration = Duration::from_secs(60);
/// How often a running job's lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long an idle worker waits before looking again (unless woken).
const IDLE_POLL: Duration = Duration::from_millis(1000);
/// How long a failed job waits before its next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[cfg(test)]
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A name for this worker that no other process shares.
fn worker_name(index: usize) -> String {
    let mut nonce = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut nonce);
    format!("{}-{}-{index}", std::process::id(), hex::encode(nonce))
}

/// How long the row of a job that ended is kept (Glance keeps a task 48
/// hours); what the job did stays on the record it worked on.
pub const ENDED_JOBS_KEPT: Duration = Duration::from_secs(48 * 3600);
/// How often a server looks for ended jobs to forget.
const TIDY_EVERY: Duration = Duration::from_secs(60);
/// How many ended jobs one statement forgets, so that no delete holds the
/// database long.
const FORGOTTEN_AT_ONCE: i64 = 1000;

/// Forgets the jobs that ended more than [`ENDED_JOBS_KEPT`] before
/// `now_ms`, a batch at a time; answers how many went.
pub async fn forget_ended_jobs(core: &Core, now_ms: i64) -> Result<u64, sqlx::Error> {
    let ended_before = now_ms - ENDED_JOBS_KEPT.as_millis() as i64;
    let mut forgotten = 0;
    loop {
        let batch = core
            .db()
            .forget_ended_jobs(ended_before, FORGOTTEN_AT_ONCE)
            .await?;
        forgotten += batch;
        if batch < FORGOTTEN_AT_ONCE as u64 {
            return Ok(forgotten);
        }
    }
}

/// How long a supervisor waits before restarting a worker that died.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Aborts a job's task when the worker stops waiting for it.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts `count` workers, each under a supervisor that starts it again if
/// it ever stops; they run until the runtime stops.
pub fn spawn_workers(core: Arc<Core>, count: usize) {
    core.set_job_workers(core.job_workers() + count);
    if count > 0 {
        // The servers that run jobs forget those that ended long ago:
        // every claim and count reads the table. First, the failure of any
        // whose record still shows it waiting or running is recorded there.
        let core = core.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(TIDY_EVERY);
            loop {
                ticks.tick().await;
                match core.record_failed_jobs().await {
                    Ok(0) => {}
                    Ok(recorded) => {
                        tracing::warn!(recorded, "recorded jobs that failed on what they worked on")
                    }
                    Err(error) => tracing::warn!(%error, "cannot record failed jobs"),
                }
                let forgotten = match core.job_clock_ms().await {
                    Ok(now) => forget_ended_jobs(&core, now).await,
                    Err(error) => Err(error),
                };
                match forgotten {
                    Ok(0) => {}
                    Ok(forgotten) => tracing::info!(forgotten, "forgot jobs that ended long ago"),
                    Err(error) => tracing::warn!(%error, "cannot forget ended jobs"),
                }
            }
        });
    }
    for index in 0..count {
        let core = core.clone();
        tokio::spawn(async move {
            loop {
                let worker = tokio::spawn(work(core.clone(), worker_name(index)));
                match worker.await {
                    Err(error) if error.is_panic() => {
                        tracing::error!("a job worker panicked; starting it again");
                    }
                    _ => tracing::error!("a job worker stopped; starting it again"),
                }
                tokio::time::sleep(RESTART_AFTER).await;
            }
        });
    }
}

async fn work(core: Arc<Core>, name: String) {
    let lease_ms = LEASE.as_millis() as i64;
    loop {
        // Before the clock is read: the lease claimed below ends `LEASE`
        // after that reading, however long the reaping and the claim take.
        let asked = tokio::time::Instant::now();
        let now = match core.job_clock_ms().await {
            Ok(now) => now,
            Err(error) => {
                tracing::warn!(%error, "cannot read the jobs' clock");
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        if let Err(error) = core.reap_jobs(now).await {
            tracing::warn!(%error, "cannot reap expired jobs");
        }
        match core.db().claim_job(&name, now, lease_ms).await {
            Ok(Some(job)) => {
                let span = tracing::info_span!(
                    "job",
                    id = job.id,
                    kind = %job.kind,
                    attempt = job.attempts
                );
                run(&core, &name, job, asked).instrument(span).await
            }
            Ok(None) => core.wait_for_jobs(IDLE_POLL).await,
            Err(error) => {
                tracing::warn!(%error, "cannot claim a job");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

async fn run(core: &Arc<Core>, name: &str, job: JobRow, claimed: tokio::time::Instant) {
    // A claim that took most of the lease to come back (a database slow to
    // answer) starts nothing: the lease lapses, and the job is taken back.
    if LeaseTiming::KEPT.may_run_out(tokio::time::Instant::now(), claimed) {
        tracing::warn!("the claim took most of the lease; the job waits for another turn");
        return;
    }
    tracing::info!("job started");
    let lease_ms = LEASE.as_millis() as i64;
    // The job runs as a task of its own: if it panics, the panic ends that
    // task only, and the job is recorded as failed like any other failure.
    let task = tokio::spawn({
        let core = core.clone();
        let job = job.clone();
        async move { core.run_job(&job).await }.in_current_span()
    });
    // A job whose lease is lost must stop: another worker runs it now.
    let _stop_on_return = AbortOnDrop(task.abort_handle());
    let work = async {
        match task.await {
            Ok(outcome) => outcome,
            Err(error) if error.is_panic() => Err("the job failed unexpectedly".to_owned()),
            Err(_) => Err("the job was cancelled".to_owned()),
        }
    };
    let renew = || async {
        let now = core.job_clock_ms().await?;
        core.db().renew_lease(job.id, name, now, lease_ms).await
    };
    let Some(outcome) = under_lease(work, renew, LeaseTiming::KEPT, claimed).await else {
        // The task is aborted on return; its outcome is not recorded.
        return;
    };
    let recorded = match (&outcome, core.job_clock_ms().await) {
        (_, Err(error)) => Err(error),
        (Ok(()), Ok(now)) => core.db().finish_job(job.id, name, now).await.map(|_| ()),
        (Err(reason), Ok(now)) => {
            tracing::warn!(%reason, "job failed");
            let retry_at = now + RETRY_AFTER.as_millis() as i64;
            match core
                .db()
                .fail_job(job.id, name, now, retry_at, reason)
                .await
            {
                Ok(Some(state)) => core.job_failed(&job, reason, state == "queued").await,
                // Another worker took the job over: its outcome is theirs to record.
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            }
        }
    };
    match recorded {
        Ok(()) => tracing::info!(ok = outcome.is_ok(), "job ended"),
        Err(error) => tracing::error!(%error, "cannot record the job's outcome"),
    }
}

/// How a job's lease is kept.
#[derive(Debug, Clone, Copy)]
struct LeaseTiming {
    renew_every: Duration,
    lasts: Duration,
}

impl LeaseTiming {
    const KEPT: Self = Self {
        renew_every: RENEW_EVERY,
        lasts: LEASE,
    };

    /// A renewal not answered within half an interval counts as failed.
    fn patience(&self) -> Duration {
        self.renew_every / 2
    }

    /// Whether a lease asked for at `from` may run out before a renewal
    /// asked at the next tick after `now` is answered, or less than an
    /// interval after: a job must not go on (nor start) under it.
    fn may_run_out(&self, now: tokio::time::Instant, from: tokio::time::Instant) -> bool {
        now + self.renew_every + self.patience() + self.renew_every >= from + self.lasts
    }
}

/// Runs `work` while its lease is renewed: its outcome, or `None` once the
/// lease is lost (another worker has the job) or might run out before a
/// renewal could be heard of (the database fails or does not answer:
/// another worker may take the job then), when `work` must stop, lest the
/// job run twice at once.
async fn under_lease<W, R, F>(
    work: W,
    mut renew: R,
    timing: LeaseTiming,
    claimed: tokio::time::Instant,
) -> Option<W::Output>
where
    W: std::future::Future,
    R: FnMut() -> F,
    F: std::future::Future<Output = Result<bool, sqlx::Error>>,
{
    let patience = timing.patience();
    tokio::pin!(work);
    let mut ticks = tokio::time::interval(timing.renew_every);
    ticks.tick().await;
    // The lease runs from when it was last asked for: at first, `claimed`.
    let mut renewed = claimed;
    loop {
        tokio::select! {
            outcome = &mut work => return Some(outcome),
            _ = ticks.tick() => {
                let asked = tokio::time::Instant::now();
                match tokio::time::timeout(patience, renew()).await {
                    Ok(Ok(true)) => renewed = asked,
                    Ok(Ok(false)) => {
                        tracing::warn!("lost the lease; another worker has the job");
                        return None;
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "cannot renew the lease"),
                    Err(_) => tracing::warn!("the lease's renewal went unanswered"),
                }
                if timing.may_run_out(asked, renewed) {
                    tracing::warn!("the lease may run out before it is renewed; the job stops");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Limits, PANICKING_JOB};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_fails_and_its_worker_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let core = Arc::new(crate::core::test_core(dir.path(), Limits::default()).await);
        let db = core.db().clone();
        let panicking = db.enqueue_job(PANICKING_JOB, "{}", now_ms()).await.unwrap();
        let next = db
            .enqueue_job("no.such.kind", "{}", now_ms() + 1)
            .await
            .unwrap();
        spawn_workers(core, 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let first = db.job_status(panicking).await.unwrap().unwrap();
            let second = db.job_status(next).await.unwrap().unwrap();
            if let (Some(first_error), Some(second_error)) = (&first.2, &second.2) {
                assert_eq!(first_error, "the job failed unexpectedly");
                assert_ne!(first.0, "running", "{first:?}");
                assert!(second_error.contains("no worker runs jobs"));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the worker stopped after a panic: {first:?} {second:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn now() -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    const QUICK: LeaseTiming = LeaseTiming {
        renew_every: Duration::from_millis(200),
        lasts: Duration::from_millis(2000),
    };

    /// A job whose lease is renewed runs to its end, however long, even
    /// past a renewal that failed once.
    #[tokio::test]
    async fn a_renewed_lease_keeps_the_job_to_its_end() {
        let mut calls = 0;
        let once_failing = || {
            calls += 1;
            let answer = if calls == 2 {
                Err(sqlx::Error::PoolTimedOut)
            } else {
                Ok(true)
            };
            async move { answer }
        };
        let work = async {
            tokio::time::sleep(QUICK.lasts * 2).await;
            "done"
        };
        assert_eq!(
            under_lease(work, once_failing, QUICK, now()).await,
            Some("done")
        );
    }

    /// A job stops once its lease is lost, or before it can run out when
    /// the database cannot renew it (fails, or does not answer): by then
    /// another worker may have taken it over.
    #[tokio::test]
    async fn a_job_stops_when_its_lease_is_not_kept() {
        async fn stopped<T>(ended: impl std::future::Future<Output = Option<T>>) -> Option<T> {
            let started = tokio::time::Instant::now();
            let ended = tokio::time::timeout(Duration::from_secs(10), ended)
                .await
                .expect("the job went on without its lease");
            assert!(started.elapsed() < QUICK.lasts, "{:?}", started.elapsed());
            ended
        }
        let never = std::future::pending::<()>;
        let lost = || async { Ok(false) };
        assert_eq!(
            stopped(under_lease(never(), lost, QUICK, now())).await,
            None
        );
        let failing = || async { Err(sqlx::Error::PoolTimedOut) };
        assert_eq!(
            stopped(under_lease(never(), failing, QUICK, now())).await,
            None
        );
        let silent = std::future::pending::<Result<bool, sqlx::Error>>;
        assert_eq!(
            stopped(under_lease(never(), silent, QUICK, now())).await,
            None
        );
    }

    /// A lease is reckoned from when it was asked for (before the clock
    /// its end is measured by was read), not from when the claim answered:
    /// a claim that took most of the lease to come back leaves little of
    /// it, and a job whose renewal fails then stops at once.
    #[tokio::test]
    async fn a_lease_runs_from_when_it_was_asked_for() {
        let mut renewals = 0;
        let failing = || {
            renewals += 1;
            async { Err(sqlx::Error::PoolTimedOut) }
        };
        let claimed = now() - QUICK.lasts * 3 / 4;
        // Nor would such a job start (`run`).
        assert!(QUICK.may_run_out(now(), claimed));
        assert!(!QUICK.may_run_out(now(), now()));
        let work = std::future::pending::<()>();
        assert_eq!(under_lease(work, failing, QUICK, claimed).await, None);
        assert_eq!(renewals, 1, "went on past its lease");
    }
}
