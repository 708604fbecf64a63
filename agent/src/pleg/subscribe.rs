//! The subscription to containerd's event stream, reopened whenever it ends
//! or fails (containerd restarted), with a capped backoff between attempts.
//! Every successful (re)subscription is announced with [`Signal::Resync`].

use std::path::PathBuf;
use std::time::Duration;

use bosun_proto::containerd::services::v1::{events_client::EventsClient, SubscribeRequest};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{decode, event_latency, filters, Signal};
use crate::kubelet_metrics::PodMetrics;

/// Where and how to subscribe.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// containerd's socket (the same socket serves CRI).
    pub socket: PathBuf,
    /// First delay before resubscribing; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay before resubscribing.
    pub max_backoff: Duration,
    /// Where each event's delivery latency is recorded.
    pub metrics: PodMetrics,
}

impl Subscription {
    /// Defaults: 100 ms doubling to 5 s.
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            metrics: PodMetrics::default(),
        }
    }
}

/// Why one subscription ended.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("connecting to {socket}: {source}")]
    Connect { socket: String, source: tonic::transport::Error },
    #[error("subscribing: {0}")]
    Subscribe(tonic::Status),
    #[error("event stream failed: {0}")]
    Stream(tonic::Status),
    #[error("event stream closed")]
    Closed,
    #[error("the pod manager stopped listening")]
    NoReceiver,
}

/// Forwards container events to `signals` until `token` is cancelled or the
/// receiver is gone; reopens the stream after every failure.
pub async fn run(sub: Subscription, signals: mpsc::Sender<Signal>, token: CancellationToken) {
    let mut backoff = sub.min_backoff;
    let mut failures: u32 = 0;
    loop {
        let ended = tokio::select! {
            () = token.cancelled() => return,
            ended = once(&sub, &signals, &mut backoff) => ended,
        };
        if matches!(ended, Ended::NoReceiver) {
            return;
        }
        // A stream that was open counts as a new outage.
        if matches!(ended, Ended::Stream(_) | Ended::Closed) {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        // Logged loudly once per outage, quietly while it lasts.
        if failures == 1 {
            tracing::warn!(error = %ended, "containerd event stream lost; relist covers until it is back");
        } else {
            tracing::debug!(error = %ended, failures, "containerd event stream still down");
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(sub.max_backoff);
    }
}

/// One subscription: connect, subscribe, announce a resync, forward events.
async fn once(sub: &Subscription, signals: &mpsc::Sender<Signal>, backoff: &mut Duration) -> Ended {
    let channel = match bosun_proto::containerd::connect(&sub.socket).await {
        Ok(channel) => channel,
        Err(source) => return Ended::Connect { socket: sub.socket.display().to_string(), source },
    };
    let request = SubscribeRequest { filters: filters() };
    let mut stream = match EventsClient::new(channel).subscribe(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Ended::Subscribe(status),
    };
    tracing::info!(socket = %sub.socket.display(), "subscribed to containerd task events");
    *backoff = sub.min_backoff;
    if signals.send(Signal::Resync).await.is_err() {
        return Ended::NoReceiver;
    }
    loop {
        match stream.next().await {
            Some(Ok(envelope)) => {
                if let Some(event) = decode(&envelope) {
                    if let Some(latency) = event_latency(&envelope, std::time::SystemTime::now()) {
                        sub.metrics.record_event_latency(latency);
                    }
                    tracing::trace!(?event, "container event");
                    if signals.send(Signal::Container(event)).await.is_err() {
                        return Ended::NoReceiver;
                    }
                }
            }
            Some(Err(status)) => return Ended::Stream(status),
            None => return Ended::Closed,
        }
    }
}
