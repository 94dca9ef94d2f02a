//! Network actions for a child (its own network namespace).
