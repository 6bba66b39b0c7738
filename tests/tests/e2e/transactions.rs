//! Transactions on PostgreSQL leave the pool as they found it: bulk writes run on generic plans
//! for their own transaction only, and a transaction abandoned while it begins leaves no
//! connection inside a transaction.

use rapport_tests::Postgres;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

async fn plan_cache_mode(conn: &impl ConnectionTrait) -> String {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SHOW plan_cache_mode",
        ))
        .await
        .unwrap()
        .expect("SHOW returns a row");
    row.try_get_by_index::<String>(0).unwrap()
}

#[tokio::test]
async fn a_bulk_write_plans_generically_and_the_pool_stays_custom() {
    let pg = Postgres::start();
    let db = rapport_storage::connect(&pg.url()).await.unwrap();
    assert_eq!(plan_cache_mode(&db).await, "force_custom_plan");

    let txn = rapport_storage::begin_bulk_write(&db).await.unwrap();
    assert_eq!(plan_cache_mode(&txn).await, "force_generic_plan");
    txn.commit().await.unwrap();

    let txn = rapport_storage::begin_bulk_write(&db).await.unwrap();
    txn.rollback().await.unwrap();

    // The connections that ran both transactions are back in the pool with the default.
    for _ in 0..10 {
        assert_eq!(plan_cache_mode(&db).await, "force_custom_plan");
    }
    let ordinary = db.begin().await.unwrap();
    assert_eq!(plan_cache_mode(&ordinary).await, "force_custom_plan");
    ordinary.commit().await.unwrap();
}

/// A call whose caller gives up (a deadline, a dropped request) may be cancelled just after its
/// `BEGIN` went out. The connection must not go back to the pool inside that transaction: the
/// next caller's statements would run in it, and a repeatable-read begin fails outright
/// ("SET TRANSACTION ISOLATION LEVEL must be called before any query").
#[tokio::test]
async fn a_transaction_abandoned_while_it_begins_leaves_no_connection_inside_it() {
    let pg = Postgres::start();
    let proxy = HoldingProxy::start(pg.port).await;
    let url = pg
        .url()
        .replace(&format!(":{}/", pg.port), &format!(":{}/", proxy.port));
    let db = rapport_storage::connect(&url).await.unwrap();
    // One pooled connection, used and idle, so every begin below takes it.
    rapport_storage::begin_read(&db)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();

    for begin in [Begin::Read, Begin::Write] {
        proxy.hold_after_begin();
        let db2 = db.clone();
        let caller = tokio::spawn(async move {
            match begin {
                Begin::Read => rapport_storage::begin_read(&db2).await.map(drop),
                Begin::Write => rapport_storage::begin_write(&db2).await.map(drop),
            }
        });
        proxy.begin_sent.notified().await;
        // The caller gives up while its BEGIN is unanswered.
        caller.abort();
        let _ = caller.await;
        proxy.release();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let open = pg
            .query("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'");
        assert_eq!(open.trim(), "0", "connections idle inside a transaction");

        // Statements outside a transaction on every pooled connection at once, then
        // repeatable-read transactions on every one at once.
        for round in 0..2 {
            let sleep = "SELECT pg_sleep(0.05)";
            let (a, b) = tokio::join!(db.execute_unprepared(sleep), db.execute_unprepared(sleep));
            a.and(b).unwrap();
            let begun = [
                rapport_storage::begin_read(&db).await,
                rapport_storage::begin_read(&db).await,
            ];
            for txn in begun {
                let txn = txn.unwrap_or_else(|e| {
                    panic!("a begin in round {round} after an abandoned {begin:?}: {e}")
                });
                txn.commit().await.unwrap();
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Begin {
    Read,
    Write,
}

/// A TCP relay to PostgreSQL that, when asked, stops passing the server's answers on from the
/// moment a client sends `BEGIN` until it is released.
struct HoldingProxy {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    held: tokio::sync::watch::Sender<bool>,
    begin_sent: std::sync::Arc<tokio::sync::Notify>,
}

impl HoldingProxy {
    async fn start(upstream: u16) -> HoldingProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (held, _) = tokio::sync::watch::channel(false);
        let begin_sent = std::sync::Arc::new(tokio::sync::Notify::new());
        let proxy = HoldingProxy {
            port,
            armed: armed.clone(),
            held: held.clone(),
            begin_sent: begin_sent.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let mut released = held.subscribe();
                let (armed, held, begin_sent) = (armed.clone(), held.clone(), begin_sent.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_rx.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if armed.load(Ordering::SeqCst)
                            && buf[..n].windows(5).any(|w| w == b"BEGIN")
                        {
                            armed.store(false, Ordering::SeqCst);
                            held.send_replace(true);
                            begin_sent.notify_one();
                        }
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = server_rx.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let _ = released.wait_for(|held| !held).await;
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        proxy
    }

    /// Holds the server's answers from the next `BEGIN` on.
    fn hold_after_begin(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Passes the held answers on, and every later one.
    fn release(&self) {
        self.held.send_replace(false);
    }
}
