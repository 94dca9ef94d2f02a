//! One undo stack for the spawn path: every phase of
//! `ContainerBuilder::build` that makes a kernel object or a file pushes
//! the action that removes it; when a later phase fails, dropping the
//! stack runs them in reverse order (the process before its network, the
//! network before the cgroup, the cgroup before the state directory that
//! names it). Success disarms it.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;

/// A value an undo action may still release: shared with the action (and
/// with `Spawner::after_clone` hooks, which fill it in the parent), taken
/// out on success.
pub(crate) struct Slot<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<T> Slot<T> {
    /// A slot holding `value` (or nothing).
    pub(crate) fn new(value: Option<T>) -> Self {
        Slot(Arc::new(Mutex::new(value)))
    }

    /// The lock; a panic elsewhere while it was held leaves the value usable.
    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Put `value` in (an `after_clone` hook's result).
    pub(crate) fn put(&self, value: T) {
        *self.lock() = Some(value);
    }

    /// Take the value out: the undo action then finds nothing to release.
    pub(crate) fn take(&self) -> Option<T> {
        self.lock().take()
    }

    /// `f` on the value, if there is one.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.lock().as_ref().map(f)
    }
}

type Action = Box<dyn FnOnce() -> Result<()>>;

/// Cleanup actions run in reverse order on drop unless [`disarm`](Self::disarm)ed.
pub(crate) struct Undo {
    container: String,
    actions: Vec<(&'static str, Action)>,
}

impl Undo {
    /// An empty stack for container `id` (named in the logs of failed undos).
    pub(crate) fn new(id: &str) -> Self {
        Undo {
            container: id.to_string(),
            actions: Vec::new(),
        }
    }

    /// Run `f` (described by `what`) if a later phase fails.
    pub(crate) fn push(&mut self, what: &'static str, f: impl FnOnce() -> Result<()> + 'static) {
        self.actions.push((what, Box::new(f)));
    }

    /// Release what `slot` holds by then (if anything) with `release`, if a
    /// later phase fails.
    pub(crate) fn release<T: 'static>(
        &mut self,
        what: &'static str,
        slot: &Slot<T>,
        release: impl FnOnce(T) -> Result<()> + 'static,
    ) {
        let slot = slot.clone();
        self.push(what, move || slot.take().map_or(Ok(()), release));
    }

    /// Keep `value` in a new slot, released with `release` if a later phase fails.
    pub(crate) fn adopt<T: 'static>(
        &mut self,
        what: &'static str,
        value: T,
        release: impl FnOnce(T) -> Result<()> + 'static,
    ) -> Slot<T> {
        let slot = Slot::new(Some(value));
        self.release(what, &slot, release);
        slot
    }

    /// Success: nothing is undone.
    pub(crate) fn disarm(mut self) {
        self.actions.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some((what, f)) = self.actions.pop() {
            if let Err(e) = f() {
                tracing::warn!(container = %self.container, error = %e, "undo: {what}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn log_undo(log: &Rc<RefCell<Vec<&'static str>>>, u: &mut Undo, what: &'static str) {
        let l = log.clone();
        u.push(what, move || {
            l.borrow_mut().push(what);
            Ok(())
        });
    }

    #[test]
    fn runs_in_reverse_on_drop() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut u = Undo::new("c");
        for what in ["state", "cgroup", "network"] {
            log_undo(&log, &mut u, what);
        }
        drop(u);
        assert_eq!(*log.borrow(), ["network", "cgroup", "state"]);
    }

    #[test]
    fn disarmed_runs_nothing() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut u = Undo::new("c");
        log_undo(&log, &mut u, "state");
        u.disarm();
        assert!(log.borrow().is_empty());
    }

    #[test]
    fn a_failed_action_does_not_stop_the_others() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut u = Undo::new("c");
        log_undo(&log, &mut u, "first");
        u.push("fails", || Err(crate::Error::invalid("no")));
        drop(u);
        assert_eq!(*log.borrow(), ["first"]);
    }

    #[test]
    fn slots_release_what_they_hold_then() {
        let released = Rc::new(RefCell::new(Vec::new()));
        let mut u = Undo::new("c");
        let r = released.clone();
        let late: Slot<u32> = Slot::new(None);
        u.release("late", &late, move |v| {
            r.borrow_mut().push(v);
            Ok(())
        });
        let r = released.clone();
        let kept = u.adopt("kept", 1, move |v| {
            r.borrow_mut().push(v);
            Ok(())
        });
        late.put(2); // filled after the action was pushed (an after_clone hook)
        assert_eq!(kept.take(), Some(1)); // taken out: not released
        drop(u);
        assert_eq!(*released.borrow(), [2]);
    }
}
