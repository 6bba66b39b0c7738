//! Server streams of a long task's progress: the task runs on its own, reporting as it goes,
//! and its last message (or error) ends the stream.

use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// A stream of progress messages, as a tonic service method returns it.
pub type ProgressStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Where a task reports its progress. A caller that left is not an error: the task goes on.
pub struct Reporter<T>(mpsc::UnboundedSender<Result<T, Status>>);

impl<T> Reporter<T> {
    /// Sends a progress message to the caller, if it still listens.
    pub fn send(&self, message: T) {
        let _ = self.0.send(Ok(message));
    }
}

/// Starts `task` on its own tokio task and streams what it reports, then the message or
/// error it ends with. Work over millions of customers outlasts any one call's deadline, so
/// the task is not tied to the call: a caller that leaves does not stop it. The stream ends
/// with UNAVAILABLE when the replica drains (`draining`, see [`crate::drain`]).
pub fn progress_stream<T, F>(
    draining: &CancellationToken,
    task: impl FnOnce(Reporter<T>) -> F,
) -> ProgressStream<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Status>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let work = task(Reporter(tx.clone()));
    tokio::spawn(async move {
        let _ = tx.send(work.await);
    });
    Box::pin(crate::until_draining(
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        draining,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn the_stream_carries_the_reports_then_the_end() {
        let stream = progress_stream(&CancellationToken::new(), |report| async move {
            report.send(1);
            report.send(2);
            Ok(3)
        });
        let got: Vec<_> = stream
            .map(|m| m.map_err(|s| s.message().to_owned()))
            .collect()
            .await;
        assert_eq!(got, [Ok(1), Ok(2), Ok(3)]);

        let failed = progress_stream(&CancellationToken::new(), |report| async move {
            report.send(1);
            Err::<i32, _>(Status::internal("broke"))
        });
        let got: Vec<_> = failed
            .map(|m| m.map_err(|s| s.message().to_owned()))
            .collect()
            .await;
        assert_eq!(got, [Ok(1), Err("broke".to_owned())]);
    }

    #[tokio::test]
    async fn the_task_finishes_when_the_caller_leaves() {
        let (done, finished) = tokio::sync::oneshot::channel();
        let stream = progress_stream(&CancellationToken::new(), |report| async move {
            tokio::task::yield_now().await;
            report.send(1);
            let _ = done.send(());
            Ok(2)
        });
        drop(stream);
        assert!(finished.await.is_ok(), "the task ran to its end");
    }
}
