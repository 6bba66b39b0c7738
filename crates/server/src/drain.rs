//! Graceful shutdown of a replica: on SIGTERM it reports NOT_SERVING at once and keeps
//! serving for a pause while load balancers and Kubernetes endpoints forget it, then stops
//! accepting calls, ends its server streams with UNAVAILABLE (clients resume on another
//! replica) and gives in-flight calls a deadline to finish. Relays flush after that.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;

/// How long a replica takes to stop after it is asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// Serving on after the stop request, while health says NOT_SERVING.
    pub pause: Duration,
    /// The longest in-flight calls get once the replica stops accepting new ones.
    pub timeout: Duration,
}

/// What a replica needs after draining: one last outbox pass and the telemetry flush.
const FLUSH: Duration = Duration::from_secs(5);

impl Drain {
    /// The longest a replica takes from SIGTERM to exit: set Kubernetes'
    /// `terminationGracePeriodSeconds` to at least this.
    pub fn grace(&self) -> Duration {
        self.pause + self.timeout + FLUSH
    }

    /// A token cancelled when draining begins, `pause` after `stop` is.
    pub fn draining(&self, stop: &CancellationToken) -> CancellationToken {
        let draining = CancellationToken::new();
        let (stop, begin, pause) = (stop.clone(), draining.clone(), self.pause);
        tokio::spawn(async move {
            stop.cancelled().await;
            tokio::time::sleep(pause).await;
            begin.cancel();
        });
        draining
    }
}

/// The status a server stream ends with when its replica drains.
pub fn shutting_down() -> Status {
    Status::unavailable("this replica is shutting down; call again to resume on another")
}

/// A server stream that ends with [`shutting_down`] when `draining` is cancelled (and
/// otherwise as `inner` does): a stream that never ends on its own must not hold a
/// replica's shutdown up to its deadline.
pub fn until_draining<S, T>(inner: S, draining: &CancellationToken) -> UntilDraining<S>
where
    S: Stream<Item = Result<T, Status>>,
{
    UntilDraining {
        inner,
        draining: Box::pin(draining.clone().cancelled_owned()),
        ended: false,
    }
}

/// See [`until_draining`].
pub struct UntilDraining<S> {
    inner: S,
    draining: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl<S, T> Stream for UntilDraining<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        // What the stream has ready goes first: a last message must not be lost to the drain.
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(some) => Poll::Ready(some),
            Poll::Pending if self.draining.as_mut().poll(cx).is_ready() => {
                self.ended = true;
                Poll::Ready(Some(Err(shutting_down())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_stream_ends_with_unavailable_when_draining_begins() {
        let draining = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, Status>>(4);
        let mut stream = until_draining(tokio_stream::wrappers::ReceiverStream::new(rx), &draining);
        tx.send(Ok(1)).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap(), 1);
        draining.cancel();
        let end = stream.next().await.unwrap().unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert!(stream.next().await.is_none(), "nothing after the end");
    }

    #[tokio::test]
    async fn what_is_ready_is_sent_before_the_drain_ends_the_stream() {
        let draining = CancellationToken::new();
        draining.cancel();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u32, Status>>(4);
        tx.send(Ok(9)).await.unwrap();
        let mut stream = until_draining(tokio_stream::wrappers::ReceiverStream::new(rx), &draining);
        assert_eq!(stream.next().await.unwrap().unwrap(), 9);
        assert_eq!(
            stream.next().await.unwrap().unwrap_err().code(),
            tonic::Code::Unavailable
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_on_its_own_ends_as_before() {
        let draining = CancellationToken::new();
        let mut stream = until_draining(tokio_stream::iter([Ok::<u32, Status>(7)]), &draining);
        assert_eq!(stream.next().await.unwrap().unwrap(), 7);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn draining_begins_a_pause_after_the_stop() {
        let drain = Drain {
            pause: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
        };
        let stop = CancellationToken::new();
        let draining = drain.draining(&stop);
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!draining.is_cancelled(), "still serving during the pause");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(draining.is_cancelled());
        assert_eq!(drain.grace(), Duration::from_millis(6_200));
    }
}
