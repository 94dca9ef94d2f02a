//! The fake of the parent-side wrappers (files and directories, as cgroupfs uses them).
