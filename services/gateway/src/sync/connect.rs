//! One connection to the source database, and the trigger's notifications on it: they wake a
//! worker at once, but only polling guarantees progress (a notification sent while the
//! connection was down is lost), so a worker waits for one at most a poll interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::SyncError;
use super::schema::CHANNEL;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client, and what wakes it: set by the trigger's notifications and when the connection ends.
pub(super) struct Connection {
    pub client: Client,
    pub woken: Arc<Notify>,
}

/// Connects to `url` and listens to the trigger's channel.
pub(super) async fn connect(url: &str, application: &str) -> Result<Connection, SyncError> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| SyncError::Config(format!("the connection string does not parse: {e}")))?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(SyncError::Config(
            "sslmode=require: this gateway does not speak TLS to PostgreSQL; use it over a private network \
             (sslmode=disable)"
                .into(),
        ));
    }
    config.application_name(application).connect_timeout(CONNECT_TIMEOUT);
    let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| SyncError::Database(format!("connecting took longer than {CONNECT_TIMEOUT:?}")))??;
    let woken = Arc::new(Notify::new());
    let wake = woken.clone();
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "the sync connection ended");
                    break;
                }
                None => break,
            }
        }
        // The next query fails and the worker reconnects; waking it gets there sooner.
        wake.notify_one();
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Connection { client, woken })
}
