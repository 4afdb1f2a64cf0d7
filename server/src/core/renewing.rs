//! Work that holds a lease while it runs (a deployed file's removal, its
//! mark; a copy into a personal store, its quota reservation): the lease is
//! renewed every so often until the work ends, however long it takes, and
//! the work never waits on a renewal.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

/// Runs `work` to its end, calling `renew` every `every` meanwhile; `work`
/// goes on while a renewal waits.
pub(crate) async fn renewing<T, Renewed>(
    work: impl Future<Output = T>,
    every: Duration,
    renew: impl FnMut() -> Renewed,
) -> T
where
    Renewed: Future<Output = ()>,
{
    tokio::select! {
        done = work => done,
        never = renew_every(every, renew) => match never {},
    }
}

/// Calls `renew` every `every`, the first time after one interval.
async fn renew_every<Renewed>(every: Duration, mut renew: impl FnMut() -> Renewed) -> Infallible
where
    Renewed: Future<Output = ()>,
{
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        renewals.tick().await;
        renew().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task is renewed while it runs, however long, and its outcome
    /// comes back once it ends.
    #[tokio::test]
    async fn a_long_task_is_renewed_until_it_ends() {
        let every = Duration::from_millis(50);
        // The task ends once it has seen three renewals: counted by their
        // effect, not by the clock, which a busy machine runs late.
        let renewed = std::sync::atomic::AtomicUsize::new(0);
        let seen = tokio::sync::Notify::new();
        let removal = async {
            while renewed.load(std::sync::atomic::Ordering::SeqCst) < 3 {
                seen.notified().await;
            }
            "removed"
        };
        let renew = || {
            renewed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            seen.notify_one();
            async {}
        };
        let outcome =
            tokio::time::timeout(Duration::from_secs(10), renewing(removal, every, renew));
        assert_eq!(outcome.await.expect("never renewed thrice"), "removed");
        assert!(renewed.into_inner() >= 3);

        // A renewal the database does not answer holds the removal up no
        // longer than it takes.
        let removal = async {
            tokio::time::sleep(every * 2).await;
            "removed"
        };
        let unanswered = renewing(removal, every, std::future::pending::<()>);
        let outcome = tokio::time::timeout(Duration::from_secs(5), unanswered).await;
        assert_eq!(outcome.expect("held up by its renewal"), "removed");
    }
}
