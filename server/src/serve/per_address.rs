//! Connections from one client at once. Past the server's connections
//! served at once, new ones wait to be accepted, whoever sends them: one
//! address that opens thousands of idle connections (each let go only after
//! the client timeout, then opened again) would keep every other client
//! waiting. So one address (an IPv6 client by its /64, as the login
//! throttle counts it) has at most so many open at once, as nginx's
//! `limit_conn` sets; past them its new connection is closed as soon as it
//! is accepted, holding neither a place nor a file. Behind a proxy every
//! client has the proxy's address: a trusted proxy's connections are not
//! capped (`serve::serve`), and the proxy limits its clients instead. An IPv6 site's /48 is not capped
//! for connections: an organisation's hosts, each in a /64 of its own,
//! share one, and a fleet downloading images holds many connections long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::login_guard::{address_key, network_key, NETWORK_BUDGETS};

/// How often a refusal is logged at most: a client past its cap may try
/// thousands of times a second.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What each client address holds at once (connections here; the bodies
/// of anonymous callers being read, `web::whole_body`), each at most `cap`,
/// and each IPv6 /48 at most `network_cap` where there is one.
pub(crate) struct PerAddress {
    cap: usize,
    network_cap: Option<usize>,
    open: Mutex<Open>,
    /// When a refusal was last logged, in seconds since the epoch.
    logged: AtomicU64,
}

/// What is open, by address key (an IPv6 client's /64) and by IPv6 /48,
/// each for a user, or for nobody in particular (`None`).
#[derive(Default)]
struct Open {
    addresses: HashMap<Key, usize>,
    networks: HashMap<Key, usize>,
}

/// An address (or network) key, and the user it is counted for, if any.
type Key = (Option<i64>, IpAddr);

/// A connection (or body, or download) counted against its address (and
/// its IPv6 network) until dropped.
pub(crate) struct Counted {
    addresses: Arc<PerAddress>,
    key: Key,
    network: Option<Key>,
}

/// One less open under `key`; a key with nothing open is forgotten.
fn release(open: &mut HashMap<Key, usize>, key: &Key) {
    if let Some(count) = open.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            open.remove(key);
        }
    }
}

impl PerAddress {
    /// At most `cap` an address.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Self::build(cap, None)
    }

    /// At most `cap` an address, and [`NETWORK_BUDGETS`] times that an
    /// IPv6 /48 (one site, which numbers its clients from 65,536 /64s), as
    /// the login throttle counts them.
    pub(crate) fn with_network_cap(cap: usize) -> Arc<Self> {
        Self::build(cap, Some(cap.saturating_mul(NETWORK_BUDGETS as usize)))
    }

    fn build(cap: usize, network_cap: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            cap,
            network_cap,
            open: Mutex::new(Open::default()),
            logged: AtomicU64::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a connection from `peer`, or `None` (logged now and then)
    /// if its address has [`PerAddress::cap`] open already.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Counted> {
        let counted = self.count(peer);
        if counted.is_none() {
            self.log_refusal(address_key(peer));
        }
        counted
    }

    /// Counts one more of `peer`'s, or `None` if its address has
    /// [`PerAddress::cap`] already (or its IPv6 /48 its network cap).
    pub(crate) fn count(self: &Arc<Self>, peer: IpAddr) -> Option<Counted> {
        self.count_for(None, peer)
    }

    /// [`PerAddress::count`], for `user` at `peer`: each user has caps of
    /// their own at each address, apart from everyone else's there.
    pub(crate) fn count_for(self: &Arc<Self>, user: Option<i64>, peer: IpAddr) -> Option<Counted> {
        let key = (user, address_key(peer));
        let network = self
            .network_cap
            .and_then(|cap| Some(((user, network_key(peer)?), cap)));
        let mut open = self.open();
        let open = &mut *open;
        let network_full = network.is_some_and(|(network, cap)| {
            open.networks.get(&network).is_some_and(|held| *held >= cap)
        });
        let network = network.map(|(network, _)| network);
        let count = open.addresses.entry(key).or_default();
        if *count >= self.cap || network_full {
            if *count == 0 {
                open.addresses.remove(&key);
            }
            return None;
        }
        *count += 1;
        if let Some(network) = network {
            *open.networks.entry(network).or_default() += 1;
        }
        Some(Counted {
            addresses: self.clone(),
            key,
            network,
        })
    }

    fn log_refusal(&self, key: IpAddr) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = self.logged.load(Ordering::Relaxed);
        if now >= last + LOG_EVERY.as_secs()
            && self
                .logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                address = %key,
                cap = self.cap,
                "connections from one address past the cap are closed \
                 (--max-connections-per-address; 0 behind a proxy)"
            );
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.addresses.open();
        release(&mut open.addresses, &self.key);
        if let Some(network) = &self.network {
            release(&mut open.networks, network);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_at_most_its_cap_and_gets_them_back() {
        let addresses = PerAddress::new(2);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let first = addresses.admit(one).unwrap();
        let _second = addresses.admit(one).unwrap();
        assert!(addresses.admit(one).is_none());
        assert!(addresses.admit("192.0.2.2".parse().unwrap()).is_some());
        // The same IPv6 host by any address of its /64; another /64 apart.
        let v6 = |address: &str| address.parse::<IpAddr>().unwrap();
        let _a = addresses.admit(v6("2001:db8::1")).unwrap();
        let _b = addresses.admit(v6("2001:db8::ffff:2")).unwrap();
        assert!(addresses.admit(v6("2001:db8::3")).is_none());
        assert!(addresses.admit(v6("2001:db8:0:1::1")).is_some());
        drop(first);
        assert!(addresses.admit(one).is_some());
        // Addresses with nothing open are forgotten.
        drop((_a, _b, _second));
        let open = addresses.open();
        assert!(open.addresses.is_empty() && open.networks.is_empty());
    }

    /// One IPv6 site holds at most four addresses' caps, however many of
    /// its /64s it spreads over; another site is not held back by it.
    #[test]
    fn an_ipv6_site_has_at_most_four_caps_across_its_networks() {
        let addresses = PerAddress::with_network_cap(2);
        let v6 = |address: String| address.parse::<IpAddr>().unwrap();
        let held: Vec<Counted> = (0..4)
            .flat_map(|network| [1, 2].map(|host| format!("2001:db8:5:{network}::{host}")))
            .map(|address| addresses.admit(v6(address)).unwrap())
            .collect();
        assert!(addresses.count(v6("2001:db8:5:99::1".into())).is_none());
        // The refusal left nothing counted for the address it refused.
        assert_eq!(addresses.open().addresses.len(), 4);
        assert!(addresses.count(v6("2001:db8:6::1".into())).is_some());
        drop(held);
        let again = addresses.count(v6("2001:db8:5:99::1".into()));
        assert!(again.is_some());
        drop(again);
        let open = addresses.open();
        assert!(open.addresses.is_empty() && open.networks.is_empty());
    }

    /// Connections are capped by address only: a site's many /64s are not
    /// held to a few addresses' caps.
    #[test]
    fn connections_are_not_capped_by_network() {
        let addresses = PerAddress::new(2);
        let held: Vec<Counted> = (0..16)
            .map(|network| format!("2001:db8:5:{network}::1").parse().unwrap())
            .map(|address| addresses.admit(address).unwrap())
            .collect();
        assert_eq!(held.len(), 16);
        assert!(addresses.open().networks.is_empty());
    }
}
