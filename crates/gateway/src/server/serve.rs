//! Serving the router on a TCP listener: HTTP/1.1 keep-alive, a deadline for request headers
//! (slow clients are cut off), and a graceful shutdown that lets in-flight requests finish and
//! then flushes the producer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::app;
use super::state::Gateway;

/// Serves the gateway until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = app(gateway.clone());
    let graceful = GracefulShutdown::new();
    let read_timeout = gateway.config.request_read_timeout();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Client resets and timeouts end a connection; they are not the server's errors.
            let _ = connection.await;
        });
    }
    tracing::info!("shutting down: draining in-flight requests");
    gateway.shutting_down.store(true, Ordering::Relaxed);
    let grace = gateway.config.shutdown_grace();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "connections still open after the grace period"
        );
    }
    let publisher = gateway.publisher.clone();
    let _ = tokio::task::spawn_blocking(move || publisher.flush(grace)).await;
    tracing::info!("gateway stopped");
    Ok(())
}
