//! The session task's incoming side: an accepted connection is admitted to the half-open
//! table, its handshake read in its own task (plaintext or MSE as the policy allows), and
//! the connection routed to the torrent its info-hash names; every other end is counted in
//! [`SessionStats`](super::SessionStats).

use super::*;

impl Actor {
    pub(super) fn accepted(&mut self, stream: tokio::net::TcpStream, addr: std::net::SocketAddr) {
        if !crate::pex::is_local(addr.ip()) {
            self.stats.incoming_remote += 1;
        }
        let silent = |p: &Pending| !p.heard.load(Ordering::Relaxed);
        match self.half_open.admit(addr.ip(), silent) {
            Admit::TooManyFromIp => {
                self.stats.half_open_refused += 1;
                tracing::debug!(%addr, "too many connections from this address in their handshake; closing");
                return;
            }
            Admit::Yes { evicted: Some(old) } => {
                self.stats.half_open_evicted += 1;
                tracing::debug!(%addr, "half-open connections at the cap; closing the oldest");
                old.abort.abort();
            }
            Admit::Yes { evicted: None } => {}
        }
        let heard = Arc::new(AtomicBool::new(false));
        let task = incoming_handshake(
            stream,
            addr,
            heard.clone(),
            (
                self.shared.cfg.silent_timeout,
                self.shared.cfg.handshake_timeout,
            ),
            self.shared.cfg.encryption,
            self.skeys.clone(),
        );
        let abort = self.handshakes.spawn(task);
        self.half_open
            .insert(abort.id(), addr.ip(), Pending { abort, heard });
    }

    pub(super) fn handshake_done(
        &mut self,
        done: Result<(tokio::task::Id, Result<Box<Incoming>, Refused>), JoinError>,
    ) {
        match done {
            Ok((id, incoming)) => {
                self.half_open.remove(&id);
                match incoming {
                    Ok(incoming) => self.route(incoming),
                    Err(Refused::Policy) => self.stats.encryption_refused += 1,
                    Err(Refused::Bad) => self.stats.bad_handshakes += 1,
                }
            }
            Err(e) => {
                // An evicted one (cancelled) was counted and forgotten when it was evicted.
                self.half_open.remove(&e.id());
                if !e.is_cancelled() {
                    self.stats.bad_handshakes += 1;
                }
            }
        }
    }

    fn route(&mut self, incoming: Box<Incoming>) {
        let ih = incoming.handshake.info_hash;
        let run = self.torrents.get(&ih).and_then(|e| e.run.as_ref());
        match run {
            Some(run) => match run.incoming.try_send(incoming) {
                Ok(()) => self.stats.routed += 1,
                Err(_) => tracing::debug!(info_hash = %ih, "torrent is not taking connections"),
            },
            None => {
                self.stats.unknown_info_hash += 1;
                tracing::debug!(addr = %incoming.addr, info_hash = %ih, "unknown info-hash; closing");
            }
        }
    }
}

/// Why an incoming connection was closed in its handshake.
#[derive(Debug)]
pub(super) enum Refused {
    /// Our `--encryption` setting refuses its kind (plaintext or encrypted).
    Policy,
    /// No valid handshake in time.
    Bad,
}

/// Reads an incoming connection's handshake, plaintext or MSE as `policy` allows (MSE
/// finds the torrent in `skeys`, by `HASH('req2', info-hash)`): the first bytes within
/// `silent`, the whole of it within `limit`. `None` (and the connection closed) when it
/// fails.
async fn incoming_handshake(
    mut stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    heard: Arc<AtomicBool>,
    (silent, limit): (Duration, Duration),
    policy: Encryption,
    skeys: Arc<HashMap<[u8; 20], InfoHash>>,
) -> Result<Box<Incoming>, Refused> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        match tokio::time::timeout(silent, stream.read_buf(&mut buf)).await {
            Err(_) => return Err(ConnError::Timeout("silent")),
            Ok(Ok(0)) => return Err(ConnError::Eof),
            Ok(Ok(_)) => heard.store(true, Ordering::Relaxed),
            Ok(Err(e)) => return Err(e.into()),
        }
        let lookup = |h: &[u8; 20]| skeys.get(h).copied();
        let hs = crypt::accept_handshake(&mut stream, &mut buf, policy, lookup);
        tokio::time::timeout_at(deadline, hs)
            .await
            .unwrap_or(Err(ConnError::Timeout("handshake")))
    };
    match read.await {
        Ok((handshake, cipher)) => Ok(Box::new(Incoming {
            stream,
            addr,
            handshake,
            buf,
            cipher,
        })),
        Err(e @ (ConnError::PlaintextRefused | ConnError::EncryptedRefused)) => {
            // The policy is the user's choice: say so where -v shows it.
            tracing::info!("{}", crypt::refusal(&e, addr));
            Err(Refused::Policy)
        }
        Err(e) => {
            tracing::debug!(%addr, error = %crate::error::error_chain(&e), "incoming handshake failed");
            Err(Refused::Bad)
        }
    }
}
