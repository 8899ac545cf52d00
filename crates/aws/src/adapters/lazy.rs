//! An SDK client built the first time a call needs it. A function builds at cold start only
//! the clients it calls (ecr-push never calls CodePipeline, CloudWatch or SQS), and every client
//! it builds shares the one HTTP client and TLS configuration of the `SdkConfig`.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

type Build<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// Built on first use, then shared by every clone.
#[derive(Clone)]
pub struct Lazy<T> {
    built: Arc<OnceLock<T>>,
    build: Build<T>,
}

impl<T> Lazy<T> {
    pub fn new(build: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Lazy {
            built: Arc::new(OnceLock::new()),
            build: Arc::new(build),
        }
    }

    /// Whether it has been built (what the start-up test checks).
    pub fn is_built(&self) -> bool {
        self.built.get().is_some()
    }
}

/// A client built elsewhere (a test's mocked one), used as it is.
impl<T: Clone + Send + Sync + 'static> From<T> for Lazy<T> {
    fn from(client: T) -> Self {
        let lazy = Lazy::new(move || client.clone());
        let _ = lazy.built.set((lazy.build)());
        lazy
    }
}

impl<T> Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.built.get_or_init(|| (self.build)())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn built_once_on_first_use_and_shared_by_clones() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let lazy = Lazy::new(move || c.fetch_add(1, Ordering::SeqCst));
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(count.load(Ordering::SeqCst), 0);
        assert_eq!(*clone, 0);
        assert_eq!(*lazy, 0);
        assert!(lazy.is_built());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
