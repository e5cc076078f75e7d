//! Bounded retries: the harness's only way to wait for something to become true (never a bare sleep).

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::time::Instant;

/// Pause between two attempts of [`eventually`].
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Runs `attempt` until it returns `Ok`, at most until `within` has passed (and at most
/// `within / RETRY_PAUSE + 1` times), pausing [`RETRY_PAUSE`] in between.
///
/// On failure the error is the last attempt's, with `what` and the time limit as context.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + within;
    let max_attempts = within.as_millis() / RETRY_PAUSE.as_millis() + 1;
    let mut last_error = anyhow!("no attempt was made");
    for _ in 0..max_attempts {
        let remaining = deadline.saturating_duration_since(Instant::now()).max(RETRY_PAUSE);
        match tokio::time::timeout(remaining, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = anyhow!("the attempt itself took longer than {remaining:?}"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last_error).with_context(|| format!("{what}: still not true after {within:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success_and_reports_the_last_failure() {
        let mut calls = 0;
        let value = eventually("third call succeeds", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(anyhow!("call {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);

        let err = eventually("never", Duration::from_millis(120), || async { Err::<(), _>(anyhow!("nope")) })
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("never: still not true") && text.contains("nope"), "{text}");
    }
}
