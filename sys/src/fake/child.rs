//! The fake of the child-side calls ([`crate::child`]).
