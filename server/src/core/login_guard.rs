//! What keeps password checks from being turned against the server.
//!
//! An argon2id check costs tens of milliseconds of CPU and 19 MiB of memory,
//! by design. Left alone, a flood of wrong passwords would run hundreds of
//! them at once. So:
//! - checks run on a few dedicated threads (half the cores), fed through a
//!   bounded queue: the CPU and memory they take is bounded, and a full queue
//!   answers "busy" at once instead of piling up work;
//! - password checks that are not answered from the cache are throttled per
//!   client address and per existing account (token buckets: a burst, then a
//!   steady rate). A throttled caller hears 429 with `Retry-After`; the bucket
//!   refills on its own within seconds, so no attacker can lock a user out for
//!   longer than the attack lasts, and sessions, tokens and recently verified
//!   credentials keep working throughout;
//! - a verified credential is remembered for a short time under an HMAC of
//!   the username and password (never the password itself), so that scripts
//!   sending Basic credentials on every call pay for argon2 once a minute.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use app::error::CoreError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use lru::LruCache;
use sha2::Sha256;

/// How long a verified Basic credential is answered from memory.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(60);

/// How many verified credentials are remembered at most.
const CREDENTIAL_CACHE_SIZE: usize = 4096;

/// Password checks waiting for a thread, per thread, before "busy".
const QUEUE_PER_THREAD: usize = 32;

/// Operator-tunable throttles: a burst, then one more attempt per period.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_address_burst: u32,
    pub per_address_period: Duration,
    pub per_account_burst: u32,
    pub per_account_period: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_address_burst: 30,
            per_address_period: Duration::from_secs(2),
            per_account_burst: 10,
            per_account_period: Duration::from_secs(6),
        }
    }
}

fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// A password check waiting for a thread.
struct Check {
    hash: String,
    password: String,
    answer: tokio::sync::oneshot::Sender<bool>,
}

/// A credential verified recently.
#[derive(Clone, Copy)]
struct Remembered {
    user_id: i64,
    until: Instant,
}

pub struct LoginGuard {
    checks: SyncSender<Check>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    cache_key: [u8; 32],
    cache: Mutex<LruCache<[u8; 32], Remembered>>,
}

/// How many threads check passwords: half the cores, at least one, so that
/// a flood of checks always leaves CPU for everything else.
fn checker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|cores| (cores.get() / 2).max(1))
        .unwrap_or(1)
}

impl LoginGuard {
    /// Starts the checker threads; `cache_key` keys the credential cache's HMAC.
    pub fn new(limits: LoginLimits, cache_key: [u8; 32]) -> Self {
        let threads = checker_threads();
        let (checks, queue) = sync_channel::<Check>(threads * QUEUE_PER_THREAD);
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for index in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("depot-password-{index}"))
                .spawn(move || loop {
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(check) = next else { return };
                    let matches = super::auth::verify_password(&check.hash, &check.password);
                    let _ = check.answer.send(matches);
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password checking thread");
            }
        }
        let capacity = std::num::NonZeroUsize::new(CREDENTIAL_CACHE_SIZE)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            checks,
            per_address: RateLimiter::keyed(quota(
                limits.per_address_burst,
                limits.per_address_period,
            )),
            per_account: RateLimiter::keyed(quota(
                limits.per_account_burst,
                limits.per_account_period,
            )),
            clock: DefaultClock::default(),
            cache_key,
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Verifies a password against an argon2 hash on a checker thread.
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, CoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let check = Check {
            hash,
            password,
            answer,
        };
        match self.checks.try_send(check) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(CoreError::Busy { retry_after: 1 }),
            Err(TrySendError::Disconnected(_)) => return Err(CoreError::Internal),
        }
        answered.await.map_err(|_| CoreError::Internal)
    }

    /// Takes one attempt from the client's bucket, or says how long to wait.
    pub fn throttle_address(&self, address: Option<IpAddr>) -> Result<(), CoreError> {
        let Some(address) = address else {
            return Ok(());
        };
        self.per_address
            .check_key(&address)
            .map_err(|not_until| self.throttled(not_until.wait_time_from(self.clock.now())))
    }

    /// Takes one attempt from an existing account's bucket.
    pub fn throttle_account(&self, username: &str) -> Result<(), CoreError> {
        self.per_account
            .check_key(&username.to_owned())
            .map_err(|not_until| self.throttled(not_until.wait_time_from(self.clock.now())))
    }

    fn throttled(&self, wait: Duration) -> CoreError {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::info!(retry_after = seconds, "sign-in attempts throttled");
        CoreError::Throttled {
            retry_after: seconds.max(1),
        }
    }

    fn cache_slot(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&(username.len() as u64).to_be_bytes());
        mac.update(username.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user a credential was verified for less than a minute ago.
    pub fn remembered(&self, username: &str, password: &str) -> Option<i64> {
        let slot = self.cache_slot(username, password);
        let mut cache = self.cache.lock().ok()?;
        match cache.get(&slot).copied() {
            Some(entry) if entry.until > Instant::now() => Some(entry.user_id),
            Some(_) => {
                cache.pop(&slot);
                None
            }
            None => None,
        }
    }

    /// Remembers a credential that was just verified.
    pub fn remember(&self, username: &str, password: &str, user_id: i64) {
        let slot = self.cache_slot(username, password);
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(
                slot,
                Remembered {
                    user_id,
                    until: Instant::now() + CREDENTIAL_CACHE_TTL,
                },
            );
        }
    }

    /// Forgets every remembered credential of a user (their password changed).
    pub fn forget_user(&self, user_id: i64) {
        if let Ok(mut cache) = self.cache.lock() {
            let stale: Vec<[u8; 32]> = cache
                .iter()
                .filter(|(_, entry)| entry.user_id == user_id)
                .map(|(slot, _)| *slot)
                .collect();
            for slot in stale {
                cache.pop(&slot);
            }
        }
    }

    /// Drops the throttles' state for keys that are back to a full bucket.
    pub fn shrink(&self) {
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
        self.per_account.retain_recent();
        self.per_account.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(burst: u32) -> LoginGuard {
        LoginGuard::new(
            LoginLimits {
                per_address_burst: burst,
                per_address_period: Duration::from_secs(60),
                per_account_burst: burst,
                per_account_period: Duration::from_secs(60),
            },
            [7; 32],
        )
    }

    #[test]
    fn a_burst_then_429_with_a_wait() {
        let guard = guard(3);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            guard.throttle_address(Some(address)).unwrap();
        }
        match guard.throttle_address(Some(address)) {
            Err(CoreError::Throttled { retry_after }) => assert!((1..=60).contains(&retry_after)),
            other => panic!("expected a throttle, got {other:?}"),
        }
        // Another address, and another account, have their own buckets.
        guard
            .throttle_address(Some("192.0.2.2".parse().unwrap()))
            .unwrap();
        guard.throttle_account("alice").unwrap();
    }

    #[test]
    fn the_cache_keys_on_both_username_and_password() {
        let guard = guard(3);
        guard.remember("alice", "secret-1", 4);
        assert_eq!(guard.remembered("alice", "secret-1"), Some(4));
        assert_eq!(guard.remembered("alice", "secret-2"), None);
        assert_eq!(guard.remembered("alicesecret-1", ""), None);
        guard.forget_user(4);
        assert_eq!(guard.remembered("alice", "secret-1"), None);
    }

    #[tokio::test]
    async fn checks_run_on_the_checker_threads() {
        let guard = guard(3);
        let hash = super::super::auth::hash_password("correct horse").unwrap();
        assert!(guard
            .verify(hash.clone(), "correct horse".into())
            .await
            .unwrap());
        assert!(!guard.verify(hash, "wrong horse".into()).await.unwrap());
    }
}
