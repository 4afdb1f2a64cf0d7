//! The login guard's throttles, queue and caches.

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

/// An account is issued a burst of tokens, then one every few seconds;
/// another account is not held back by it.
#[test]
fn tokens_issued_to_an_account_are_throttled() {
    let guard = guard(5);
    for _ in 0..TOKENS_BURST {
        guard.may_issue_token(1).unwrap();
    }
    match guard.may_issue_token(1) {
        Err(CoreError::Throttled { what, retry_after }) => {
            assert!(what.contains("tokens"), "{what}");
            assert!((1..=TOKENS_PERIOD.as_secs()).contains(&retry_after));
        }
        other => panic!("{other:?}"),
    }
    guard.may_issue_token(2).unwrap();
}

#[test]
fn a_burst_then_429_with_a_wait() {
    let guard = guard(3);
    let address: IpAddr = "192.0.2.1".parse().unwrap();
    for _ in 0..3 {
        guard.throttle_address(Some(address), false).unwrap();
    }
    match guard.throttle_address(Some(address), false) {
        Err(CoreError::Throttled { retry_after, .. }) => {
            assert!((1..=60).contains(&retry_after))
        }
        other => panic!("expected a throttle, got {other:?}"),
    }
    // Another address, and another account, have their own buckets.
    guard
        .throttle_address(Some("192.0.2.2".parse().unwrap()), false)
        .unwrap();
    guard.throttle_account("alice", false).unwrap();
    // One IPv6 host is one /64.
    let v6 = |text: &str| Some(text.parse::<IpAddr>().unwrap());
    for host in ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:1"] {
        guard.throttle_address(v6(host), false).unwrap_or(());
    }
    assert!(guard.throttle_address(v6("2001:db8::99"), false).is_err());
    assert!(guard.throttle_address(v6("2001:db8:0:1::1"), false).is_ok());
}

#[test]
fn an_address_that_signed_in_passes_its_account_throttle() {
    let guard = guard(1);
    let home = Some("192.0.2.7".parse().unwrap());
    let attacker = Some("198.51.100.1".parse().unwrap());
    let attempt = |name: &str, address| guard.throttle_account(name, guard.known(name, address));
    attempt("alice", attacker).unwrap();
    assert!(attempt("alice", attacker).is_err());
    assert!(attempt("Alice", home).is_err());
    guard.signed_in("alice", home);
    assert!(attempt("alice", home).is_ok());
    assert!(attempt("alice", attacker).is_err());
    // `Alice` is another account (names are told apart by case):
    // signing in to `alice` does not exempt guesses at it.
    assert!(attempt("Alice", home).is_err());
}

#[test]
fn the_cache_keys_on_both_username_and_password() {
    let guard = guard(3);
    guard.remember("alice", "secret-1", 4, "$argon2id$hash");
    assert_eq!(
        guard.remembered("alice", "secret-1"),
        Some((4, hash_digest("$argon2id$hash")))
    );
    assert_eq!(guard.remembered("alice", "secret-2"), None);
    assert_eq!(guard.remembered("alicesecret-1", ""), None);
    guard.forget_user(4);
    assert_eq!(guard.remembered("alice", "secret-1"), None);
}

#[tokio::test]
async fn checks_run_on_the_checker_threads() {
    let guard = guard(3);
    let hash = super::super::auth::hash_password(
        "correct horse",
        super::super::auth::PasswordCost::default(),
    )
    .unwrap();
    assert!(guard
        .verify(hash.clone(), "correct horse".into(), None)
        .await
        .unwrap());
    assert!(!guard
        .verify(hash, "wrong horse".into(), None)
        .await
        .unwrap());
}

/// A flood of checks for pairs that never signed in fills the queue
/// to its share and is then told "busy"; so is one account's flood of
/// checks from addresses that signed in to it, past a few at once; a
/// user signing in from where they did before is still checked.
#[tokio::test]
async fn a_flood_of_checks_leaves_room_for_known_users() {
    let guard = guard(3);
    let hash = super::super::auth::hash_password(
        "correct horse",
        super::super::auth::PasswordCost::default(),
    )
    .unwrap();
    let busy = |answers: &[Result<bool, CoreError>]| {
        answers
            .iter()
            .filter(|answer| matches!(answer, Err(CoreError::Busy { .. })))
            .count()
    };
    let unknown: Vec<_> = (0..guard.capacity * 2)
        .map(|_| guard.verify(hash.clone(), "guess".into(), None))
        .collect();
    let known_attacker: Vec<_> = (0..KNOWN_AT_ONCE * 2)
        .map(|_| guard.verify(hash.clone(), "guess".into(), Some("mallory")))
        .collect();
    let user = guard.verify(hash.clone(), "correct horse".into(), Some("alice"));
    let (unknown, known_attacker, user) = tokio::join!(
        futures_util::future::join_all(unknown),
        futures_util::future::join_all(known_attacker),
        user
    );
    assert!(busy(&unknown) >= guard.capacity / 2, "{}", busy(&unknown));
    assert!(busy(&known_attacker) >= KNOWN_AT_ONCE / 2);
    assert!(user.unwrap(), "the known user was not checked");
    assert!(guard.known_checks.lock().unwrap().is_empty());
}

/// A caller who hangs up leaves its check in the queue: it counts
/// against its account until a thread has made it.
#[tokio::test]
async fn a_check_whose_caller_hung_up_counts_until_it_is_made() {
    let guard = guard(3);
    let hash = super::super::auth::hash_password(
        "correct horse",
        super::super::auth::PasswordCost::default(),
    )
    .unwrap();
    // The thread is kept busy first: the known checks wait behind these.
    let mut ahead: Vec<_> = (0..8)
        .map(|_| Box::pin(guard.verify(hash.clone(), "guess".into(), None)))
        .collect();
    for check in &mut ahead {
        assert!(futures_util::poll!(check).is_pending());
    }
    let mut hung_up: Vec<_> = (0..KNOWN_AT_ONCE)
        .map(|_| Box::pin(guard.verify(hash.clone(), "guess".into(), Some("mallory"))))
        .collect();
    for check in &mut hung_up {
        assert!(futures_util::poll!(check).is_pending());
    }
    drop(hung_up);
    let counted = guard.known_checks.lock().unwrap().get("mallory").copied();
    assert_eq!(counted, Some(KNOWN_AT_ONCE));
    for check in ahead {
        assert!(!check.await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !guard.known_checks.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the hung-up checks were never made"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One account signing in from address after address forgets its own
/// oldest, never another account's.
#[test]
fn one_account_cannot_push_out_anothers_known_addresses() {
    let guard = guard(3);
    let home = Some("192.0.2.7".parse().unwrap());
    guard.signed_in("alice", home);
    // More addresses than any list of them is long.
    let mallorys = |host: u32| Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + host)));
    for host in 0..70_000 {
        guard.signed_in("mallory", mallorys(host));
    }
    assert!(guard.known("alice", home));
    assert!(!guard.known("mallory", mallorys(0)));
    assert!(guard.known("mallory", mallorys(69_999)));
}

/// The /64s of one /48 share a budget four times one /64's.
#[test]
fn many_64s_of_one_48_are_one_client() {
    let guard = guard(3);
    let v6 = |text: String| Some(text.parse::<IpAddr>().unwrap());
    let mut allowed = 0;
    for subnet in 0..100 {
        if guard
            .throttle_address(v6(format!("2001:db8:0:{subnet:x}::1")), false)
            .is_ok()
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3 * NETWORK_BUDGETS);
    assert!(guard
        .throttle_address(v6("2001:db8:1::1".to_owned()), false)
        .is_ok());
    // A user known to the account they sign in to is held to their
    // own /64's bucket only.
    assert!(guard
        .throttle_address(v6("2001:db8:0:ff::1".to_owned()), true)
        .is_ok());
}
