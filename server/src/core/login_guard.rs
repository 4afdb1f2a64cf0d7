//! What keeps password checks from being turned against the server.
//!
//! An argon2id check costs tens of milliseconds of CPU and 19 MiB of memory,
//! by design. Left alone, a flood of wrong passwords would run hundreds of
//! them at once. So:
//! - checks run on a few dedicated threads (half the cores), fed through a
//!   bounded queue: the CPU and memory they take is bounded, and a full queue
//!   answers "busy" at once instead of piling up work;
//! - password checks that are not answered from the cache are throttled per
//!   client address (an IPv6 client by its /64, and its /48 with four times
//!   the budget, so that a client holding many /64s is one client still)
//!   and per account name, known
//!   or not, so that a throttle says nothing about which accounts exist
//!   (token buckets: a burst, then a steady rate). A throttled caller hears
//!   429 with `Retry-After`; buckets refill on their own within seconds. An
//!   address that signed in to an account in the last week is not held back
//!   by that account's bucket, so an attacker guessing a user's password
//!   elsewhere does not lock the user out; sessions, tokens and recently
//!   verified credentials keep working throughout; and a quarter of the
//!   checker queue is kept for such known (account, address) pairs, so
//!   that a flood from addresses without number cannot keep a user out;
//! - tokens issued to one account are throttled the same way, since a
//!   remembered credential (below) costs nothing to present again;
//! - a verified credential is remembered for a short time under an HMAC of
//!   the username and password (never the password itself), so that scripts
//!   sending Basic credentials on every call pay for argon2 once a minute.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use app::error::CoreError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use lru::LruCache;
use sha2::{Digest, Sha256};

/// How long a verified Basic credential is answered from memory.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(60);

/// How many verified credentials are remembered at most.
const CREDENTIAL_CACHE_SIZE: usize = 4096;

/// Tokens one account may be issued at once, then one per period.
const TOKENS_BURST: u32 = 20;
const TOKENS_PERIOD: Duration = Duration::from_secs(3);

/// Browser sessions one account may start at once, then one per period.
const SESSIONS_BURST: u32 = 30;
const SESSIONS_PERIOD: Duration = Duration::from_secs(2);

/// Password checks waiting for a thread, per thread, before "busy".
const QUEUE_PER_THREAD: usize = 32;

/// The share of the queue checks for an (account, address) pair that has
/// not signed in before may fill: the rest waits for those that have.
const UNKNOWN_SHARE: (usize, usize) = (3, 4);

/// How many /64s' budgets a /48 has: one site, which can number its
/// clients from 65,536 /64s.
pub(crate) const NETWORK_BUDGETS: u32 = 4;

/// How many checks of one account's known pairs may wait at once in the
/// queue's kept quarter: an attacker who signed in to their own account
/// from each of their addresses takes no more of it than that.
const KNOWN_AT_ONCE: usize = 4;

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
    /// Counted against its account while it waits and runs (a caller who
    /// hangs up leaves it in the queue, still counted).
    _known: Option<KnownCheck>,
}

/// Checks of known pairs being made, per account.
type KnownChecks = std::sync::Arc<Mutex<std::collections::HashMap<String, usize>>>;

/// How long an address that signed in to an account passes that account's throttle.
const KNOWN_CLIENT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How many accounts' addresses that signed in are remembered, and how
/// many addresses each (its latest): one account signing in from address
/// after address pushes out its own oldest, never another account's.
const KNOWN_ACCOUNTS: usize = 16_384;
const KNOWN_PER_ACCOUNT: usize = 8;

/// The key of a client address: an IPv4 address (a v4-mapped IPv6 one
/// unwrapped), or the /64 network of an IPv6 one, which one host holds whole.
pub(crate) fn address_key(address: IpAddr) -> IpAddr {
    ipv6_prefix(address, 4)
}

/// The /48 network of an IPv6 address, one site's; `None` for IPv4 (a /24
/// may be many unrelated clients behind one provider's NAT).
pub(crate) fn network_key(address: IpAddr) -> Option<IpAddr> {
    match ipv6_prefix(address, 3) {
        IpAddr::V4(_) => None,
        v6 => Some(v6),
    }
}

/// The first `segments` of an IPv6 address (an IPv4 one as it is).
fn ipv6_prefix(address: IpAddr, segments: usize) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut kept = v6.segments();
                kept[segments..].fill(0);
                IpAddr::V6(kept.into())
            }
        },
    }
}

/// A credential verified recently.
#[derive(Clone, Copy)]
struct Remembered {
    user_id: i64,
    /// Which password hash the credential was checked against: once the
    /// account's hash changes (a new password, on any server sharing the
    /// database), the entry no longer vouches for anything.
    hash_digest: [u8; 32],
    until: Instant,
}

/// A short fingerprint of a stored password hash.
pub fn hash_digest(password_hash: &str) -> [u8; 32] {
    Sha256::digest(password_hash.as_bytes()).into()
}

pub struct LoginGuard {
    checks: SyncSender<Check>,
    /// Checks sent and not yet taken by a thread.
    waiting: std::sync::Arc<AtomicUsize>,
    /// Checks of known pairs being made, per account.
    known_checks: KnownChecks,
    /// How many may wait at most; checks of unknown pairs, a share of it.
    capacity: usize,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Per IPv6 /48.
    per_network: DefaultKeyedRateLimiter<IpAddr>,
    /// Per account name, by its name's SHA-256.
    per_account: DefaultKeyedRateLimiter<[u8; 32]>,
    /// Tokens issued, per account.
    token_issues: DefaultKeyedRateLimiter<i64>,
    /// Browser sessions started, per account.
    session_starts: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
    cache_key: [u8; 32],
    cache: Mutex<LruCache<[u8; 32], Remembered>>,
    /// Per account, the address keys that signed in to it, oldest first,
    /// and until when they pass.
    known_clients: Mutex<LruCache<String, Vec<(IpAddr, Instant)>>>,
}

/// A check of a known pair being made, counted against its account.
struct KnownCheck {
    checks: KnownChecks,
    account: String,
}

impl Drop for KnownCheck {
    fn drop(&mut self) {
        if let Ok(mut checks) = self.checks.lock() {
            if let Some(count) = checks.get_mut(&self.account) {
                *count -= 1;
                if *count == 0 {
                    checks.remove(&self.account);
                }
            }
        }
    }
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
        let capacity = threads * QUEUE_PER_THREAD;
        let (checks, queue) = sync_channel::<Check>(capacity);
        let queue = std::sync::Arc::new(Mutex::new(queue));
        let waiting = std::sync::Arc::new(AtomicUsize::new(0));
        for index in 0..threads {
            let queue = queue.clone();
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("depot-password-{index}"))
                .spawn(move || loop {
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(check) = next else { return };
                    waiting.fetch_sub(1, Ordering::AcqRel);
                    // A panic in a check answers "no" and keeps the thread.
                    let Check {
                        hash,
                        password,
                        answer,
                        _known: known,
                    } = check;
                    let matches =
                        std::panic::catch_unwind(|| super::auth::verify_password(&hash, &password))
                            .unwrap_or(false);
                    // Its account's count goes down before the answer is heard.
                    drop(known);
                    let _ = answer.send(matches);
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password checking thread");
            }
        }
        let remembered = std::num::NonZeroUsize::new(CREDENTIAL_CACHE_SIZE)
            .unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            checks,
            waiting,
            known_checks: KnownChecks::default(),
            capacity,
            per_address: RateLimiter::keyed(quota(
                limits.per_address_burst,
                limits.per_address_period,
            )),
            per_network: RateLimiter::keyed(quota(
                limits.per_address_burst.saturating_mul(NETWORK_BUDGETS),
                limits.per_address_period / NETWORK_BUDGETS,
            )),
            per_account: RateLimiter::keyed(quota(
                limits.per_account_burst,
                limits.per_account_period,
            )),
            token_issues: RateLimiter::keyed(quota(TOKENS_BURST, TOKENS_PERIOD)),
            session_starts: RateLimiter::keyed(quota(SESSIONS_BURST, SESSIONS_PERIOD)),
            clock: DefaultClock::default(),
            cache_key,
            cache: Mutex::new(LruCache::new(remembered)),
            known_clients: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(KNOWN_ACCOUNTS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    /// Verifies a password against an argon2 hash on a checker thread.
    /// A check finds the queue full at [`UNKNOWN_SHARE`] of it, unless it
    /// is for an account (`known_account`) that the caller's address signed
    /// in to before and that has fewer than [`KNOWN_AT_ONCE`] such checks
    /// being made.
    pub async fn verify(
        &self,
        hash: String,
        password: String,
        known_account: Option<&str>,
    ) -> Result<bool, CoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let known = known_account.and_then(|account| self.known_check(account));
        let room = if known.is_some() {
            self.capacity
        } else {
            self.capacity * UNKNOWN_SHARE.0 / UNKNOWN_SHARE.1
        };
        let check = Check {
            hash,
            password,
            answer,
            _known: known,
        };
        let busy = CoreError::Busy { retry_after: 1 };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= room {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy);
        }
        match self.checks.try_send(check) {
            Ok(()) => {}
            Err(refused) => {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(match refused {
                    TrySendError::Full(_) => busy,
                    TrySendError::Disconnected(_) => CoreError::Internal,
                });
            }
        }
        answered.await.map_err(|_| CoreError::Internal)
    }

    /// One more check of `account`'s known pairs, if it has fewer than
    /// [`KNOWN_AT_ONCE`] being made; it ends when the token is dropped.
    fn known_check(&self, account: &str) -> Option<KnownCheck> {
        let mut checks = self.known_checks.lock().ok()?;
        let count = checks.entry(account.to_owned()).or_default();
        if *count >= KNOWN_AT_ONCE {
            return None;
        }
        *count += 1;
        Some(KnownCheck {
            checks: self.known_checks.clone(),
            account: account.to_owned(),
        })
    }

    /// Whether `address` signed in to `username` in the last week: the
    /// name as signed in to (names are told apart by case), so signing in
    /// to `bob` makes no one known to `Bob`.
    pub fn known(&self, username: &str, address: Option<IpAddr>) -> bool {
        let Some(address) = address else {
            return false;
        };
        let key = address_key(address);
        let Ok(mut known) = self.known_clients.lock() else {
            return false;
        };
        known.get(username).is_some_and(|addresses| {
            addresses
                .iter()
                .any(|&(known, until)| known == key && until > Instant::now())
        })
    }

    /// Takes one attempt from the client's bucket, and from its /48's
    /// unless the client is `known` to the account it signs in to (one
    /// guesser in a campus's /48 holds back none of its known users), or
    /// says how long to wait.
    pub fn throttle_address(&self, address: Option<IpAddr>, known: bool) -> Result<(), CoreError> {
        let Some(address) = address else {
            return Ok(());
        };
        let wait = |not_until: governor::NotUntil<_>| {
            self.throttled(not_until.wait_time_from(self.clock.now()))
        };
        self.per_address
            .check_key(&address_key(address))
            .map_err(wait)?;
        match network_key(address) {
            Some(network) if !known => self.per_network.check_key(&network).map_err(wait),
            _ => Ok(()),
        }
    }

    /// Takes one attempt from an account name's bucket (whether or not the
    /// account exists), unless the caller is `known` to it.
    pub fn throttle_account(&self, username: &str, known: bool) -> Result<(), CoreError> {
        if known {
            return Ok(());
        }
        // Kept by its digest: a name is whatever a client sends (300 KB of
        // it, as often as the throttle lets), and the buckets live minutes.
        // Counted without case: guesses at `Bob` and `BOB` share a bucket.
        let key: [u8; 32] = Sha256::digest(username.to_ascii_lowercase().as_bytes()).into();
        self.per_account
            .check_key(&key)
            .map_err(|not_until| self.throttled(not_until.wait_time_from(self.clock.now())))
    }

    /// Notes that an address signed in to an account.
    pub fn signed_in(&self, username: &str, address: Option<IpAddr>) {
        let Some(address) = address else { return };
        let key = address_key(address);
        if let Ok(mut known) = self.known_clients.lock() {
            let addresses = known.get_or_insert_mut(username.to_owned(), Vec::new);
            addresses.retain(|&(known, _)| known != key);
            if addresses.len() >= KNOWN_PER_ACCOUNT {
                addresses.remove(0);
            }
            addresses.push((key, Instant::now() + KNOWN_CLIENT_TTL));
        }
    }

    fn throttled(&self, wait: Duration) -> CoreError {
        self.throttled_for("sign-in attempts", wait)
    }

    fn throttled_for(&self, what: &str, wait: Duration) -> CoreError {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::info!(retry_after = seconds, "{what} throttled");
        CoreError::Throttled {
            what: what.to_owned(),
            retry_after: seconds.max(1),
        }
    }

    /// Whether `user` may be issued one more token now: a burst, then one
    /// every few seconds, so that credentials cached for a minute cannot
    /// mint tokens without end (each a row kept for 30 days).
    pub fn may_issue_token(&self, user: i64) -> Result<(), CoreError> {
        self.token_issues.check_key(&user).map_err(|not_until| {
            self.throttled_for(
                "tokens issued to this account just now",
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    /// Whether `user` may start one more browser session now: a burst, then
    /// one every few seconds, as tokens are issued. A sign-in answered from
    /// the cache of verified passwords passes the password throttles, and
    /// each session is a row kept for days.
    pub fn may_start_session(&self, user: i64) -> Result<(), CoreError> {
        self.session_starts.check_key(&user).map_err(|not_until| {
            self.throttled_for(
                "sign-ins to this account just now",
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    fn cache_slot(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&(username.len() as u64).to_be_bytes());
        mac.update(username.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user a credential was verified for less than a minute ago, and
    /// the [`hash_digest`] of the password hash it was verified against.
    pub fn remembered(&self, username: &str, password: &str) -> Option<(i64, [u8; 32])> {
        let slot = self.cache_slot(username, password);
        let mut cache = self.cache.lock().ok()?;
        match cache.get(&slot).copied() {
            Some(entry) if entry.until > Instant::now() => Some((entry.user_id, entry.hash_digest)),
            Some(_) => {
                cache.pop(&slot);
                None
            }
            None => None,
        }
    }

    /// Remembers a credential that was just verified against `password_hash`.
    pub fn remember(&self, username: &str, password: &str, user_id: i64, password_hash: &str) {
        let slot = self.cache_slot(username, password);
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(
                slot,
                Remembered {
                    user_id,
                    hash_digest: hash_digest(password_hash),
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
        self.token_issues.retain_recent();
        self.token_issues.shrink_to_fit();
        self.session_starts.retain_recent();
        self.session_starts.shrink_to_fit();
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
        self.per_network.retain_recent();
        self.per_network.shrink_to_fit();
        self.per_account.retain_recent();
        self.per_account.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests;
