//! The downloads of image bytes one client receives at once: a signed-in
//! user's at each address, and a caller's not signed in by address (an
//! IPv6 client by its /64, its /48 four times as many, for a user too). Each download
//! holds a few chunks read ahead of its socket, from room every download
//! shares (the mapped chunks and the buffers of `blob::local::reading`): a
//! few addresses holding hundreds of downloads they barely read would keep
//! everyone else's waiting. A user is counted at each address: a fleet of
//! hosts signed in as one account each has its own, and behind a proxy not
//! named trusted (every caller at its address) one user's downloads are not
//! another's refusal.

use std::net::IpAddr;
use std::sync::Arc;

use app::error::CoreError;
use app::model::Viewer;
use bytes::Bytes;

use crate::serve::per_address::{Counted, PerAddress};

/// How long a client past its downloads at once is told to wait.
const RETRY_AFTER: u64 = 5;

/// Each client's downloads at once, up to a cap: counted by address, for
/// a signed-in user apart from everyone else there.
pub(crate) struct DownloadPlaces(Arc<PerAddress>);

/// One of a client's downloads at once, held until every chunk of its body
/// is dropped (the last one once it was written to the socket).
pub(crate) type DownloadPlace = Counted;

impl DownloadPlaces {
    /// At most `cap` downloads a client.
    pub(crate) fn new(cap: usize) -> Self {
        Self(PerAddress::with_network_cap(cap))
    }

    /// A place for one more download of `viewer`'s (from `client`), or 429
    /// when they have their cap of downloads; none when the address is not
    /// known.
    pub(crate) fn take(
        &self,
        viewer: &Viewer,
        client: Option<IpAddr>,
    ) -> Result<Option<DownloadPlace>, CoreError> {
        let Some(client) = client else {
            return Ok(None);
        };
        match self.0.count_for(viewer.user_id(), client) {
            Some(place) => Ok(Some(place)),
            None => Err(CoreError::Throttled {
                what: "downloads at once from one client".into(),
                retry_after: RETRY_AFTER,
            }),
        }
    }
}

/// A chunk of a download that holds its place: the same bytes at the same
/// address (a mapped chunk is still sent from its file).
struct HeldChunk {
    bytes: Bytes,
    _place: Arc<DownloadPlace>,
}

impl AsRef<[u8]> for HeldChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// `bytes` holding `place` while they live.
pub(crate) fn held(bytes: Bytes, place: &Arc<DownloadPlace>) -> Bytes {
    Bytes::from_owner(HeldChunk {
        bytes,
        _place: place.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::{Principal, Role};

    fn user(id: i64) -> Viewer {
        Viewer::User(Principal {
            id,
            username: format!("u{id}"),
            role: Role::User,
            credentials_version: 0,
            from_token: false,
        })
    }

    /// A user's downloads are counted apart from their address's, at each
    /// address (an IPv6 one by its /64), and a place comes back when the
    /// last chunk holding it is dropped.
    #[test]
    fn a_place_is_held_by_its_chunks_and_counted_per_user() {
        let places = DownloadPlaces::new(1);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let alice = places.take(&user(1), Some(address)).unwrap().unwrap();
        assert!(places.take(&user(1), Some(address)).is_err());
        assert!(places.take(&user(2), Some(address)).unwrap().is_some());
        let elsewhere: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_host: IpAddr = "2001:db8:1:2::99".parse().unwrap();
        let _there = places.take(&user(1), Some(elsewhere)).unwrap().unwrap();
        assert!(places.take(&user(1), Some(same_host)).is_err());
        // A user's /48 holds four times the cap, as a caller's not signed in.
        let in_the_site = |n: u16| -> IpAddr { format!("2001:db8:1:{n}::1").parse().unwrap() };
        let in_site: Vec<_> = (3..6)
            .map(|n| places.take(&user(1), Some(in_the_site(n))))
            .collect();
        assert!(in_site.iter().all(|place| matches!(place, Ok(Some(_)))));
        assert!(places.take(&user(1), Some(in_the_site(6))).is_err());
        let anonymous = places.take(&Viewer::Anonymous, Some(address)).unwrap();
        assert!(anonymous.is_some());
        assert!(places.take(&Viewer::Anonymous, Some(address)).is_err());
        assert!(places.take(&Viewer::Anonymous, None).unwrap().is_none());
        assert!(places.take(&user(1), None).unwrap().is_none());

        let alice = Arc::new(alice);
        let chunk = Bytes::from_static(b"bytes of an image");
        let kept = held(chunk.clone(), &alice);
        assert_eq!(kept.as_ptr(), chunk.as_ptr());
        drop(alice);
        assert!(
            places.take(&user(1), Some(address)).is_err(),
            "its chunk holds it"
        );
        drop(kept);
        assert!(places.take(&user(1), Some(address)).unwrap().is_some());
    }
}
