//! An overlay mount prepared in the parent and made by a child after
//! `clone(2)`: for a container whose target and upper layer exist only in
//! its own mount namespace, so no detached mount can be made beforehand.

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_sys::child;

use super::{MountMethod, Overlay, FSCONFIG_STRING_MAX, LEGACY_DATA_MAX};
use crate::sys;
use crate::{Error, Result};

/// An overlay mount prepared by [`Overlay::prepare_child_mount`]: every
/// path and option already a C string, so [`mount`](Self::mount) makes
/// only raw syscalls (no allocation, no lock, no panic), as a child
/// between `clone(2)` and `execve(2)` must.
///
/// It follows the overlay's [`MountMethod`], decided in the child for
/// [`Auto`](MountMethod::Auto) (the parent may lack the privilege to
/// probe): the new mount API with one `lowerdir+` per layer (Linux ≥ 6.8;
/// its source named `overlay`, as `mount(2)` names it), and when the
/// kernel rejects that (`EINVAL`, `ENOSYS`), the classic option string
/// through `mount(2)` if it fits a page. [`Legacy`](MountMethod::Legacy)
/// prepares only the string, [`Append`](MountMethod::Append) only
/// `lowerdir+`.
///
/// ```no_run
/// let m = berth_overlay::Overlay::new()
///     .lowers(["/img/top", "/img/base"])
///     .upper("/run/c1/rw/upper")
///     .work("/run/c1/rw/work")
///     .prepare_child_mount("/run/c1/rootfs")?;
/// // In the child, after clone(2) into a new mount namespace:
/// m.mount().map_err(std::io::Error::from_raw_os_error)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ChildOverlay {
    target: CString,
    /// The new mount API's parameters (`None`: a path longer than
    /// `fsconfig(2)` copies).
    append: Option<AppendParams>,
    /// `mount(2)`'s option string (`None`: longer than a page, or a path
    /// the string cannot carry).
    legacy: Option<CString>,
    read_only: bool,
    layers: usize,
}

/// `fsconfig(2)` keys and values, in order.
#[derive(Debug)]
struct AppendParams {
    strings: Vec<(&'static std::ffi::CStr, CString)>,
    flags: Vec<&'static std::ffi::CStr>,
}

impl Overlay {
    /// Prepare this overlay for mounting at `target` by a child process
    /// (see [`ChildOverlay`]). The directories are not looked at: the
    /// upper and work directories and the target may exist only in the
    /// child's mount namespace.
    ///
    /// ```
    /// let m = berth_overlay::Overlay::new()
    ///     .lower("/img/base")
    ///     .upper("/run/c1/rw/upper")
    ///     .work("/run/c1/rw/work")
    ///     .prepare_child_mount("/run/c1/rootfs")?;
    /// assert_eq!(m.layers(), 1);
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    #[doc(alias("fsconfig", "lowerdir+"))]
    pub fn prepare_child_mount(&self, target: impl AsRef<Path>) -> Result<ChildOverlay> {
        self.validate()?;
        let target = target.as_ref();
        let invalid = |what: &str| {
            Error::InvalidConfig(format!(
                "overlay on {}: {what} contains a NUL byte",
                target.display()
            ))
        };
        let append = match self.method {
            MountMethod::Legacy => None,
            _ => self.append_params().map_err(|_| invalid("a path"))?,
        };
        // A path the string cannot carry would go as /proc/self/fd/N of a
        // descriptor opened here (`held`), which the child does not have.
        let mut held = Vec::new();
        let legacy = match self.legacy_data(false, &mut held) {
            _ if self.method == MountMethod::Append => None,
            Some(d) if held.is_empty() && d.len() <= LEGACY_DATA_MAX => {
                Some(CString::new(d).map_err(|_| invalid("the option string"))?)
            }
            _ => None,
        };
        if append.is_none() && legacy.is_none() {
            return Err(Error::InvalidConfig(format!(
                "overlay on {}: {} layers fit neither the mount option page nor fsconfig's {FSCONFIG_STRING_MAX}-byte values ({:?})",
                target.display(),
                self.lowers.len(),
                self.method
            )));
        }
        Ok(ChildOverlay {
            target: sys::cpath(target).map_err(|_| invalid("the target"))?,
            append,
            legacy,
            read_only: self.read_only || self.upper.is_none(),
            layers: self.lowers.len(),
        })
    }

    /// The `fsconfig(2)` parameters, `None` when a path is longer than the
    /// kernel copies (those go by fd in [`Overlay::mount`], which a child
    /// cannot open beforehand).
    fn append_params(&self) -> io::Result<Option<AppendParams>> {
        let mut strings = vec![(c"source", sys::cbytes(b"overlay")?)];
        let dirs = self.lowers.iter().map(|l| (c"lowerdir+", l));
        let rw = [(c"upperdir", &self.upper), (c"workdir", &self.work)];
        let rw = rw.iter().filter_map(|(k, d)| d.as_ref().map(|d| (*k, d)));
        for (key, dir) in dirs.chain(rw) {
            let bytes = dir.as_os_str().as_bytes();
            if bytes.len() > FSCONFIG_STRING_MAX {
                return Ok(None);
            }
            strings.push((key, sys::cbytes(bytes)?));
        }
        for (key, val) in self.string_options() {
            let key = match key {
                "index" => c"index",
                "metacopy" => c"metacopy",
                _ => c"redirect_dir",
            };
            strings.push((key, sys::cbytes(val.as_bytes())?));
        }
        let flags = [(c"userxattr", self.userxattr), (c"volatile", self.volatile)]
            .into_iter()
            .filter_map(|(f, on)| on.then_some(f))
            .collect();
        Ok(Some(AppendParams { strings, flags }))
    }
}

impl ChildOverlay {
    /// Mount it. Raw syscalls only (`berth_sys::child`): safe in a child
    /// after `clone(2)`. Returns the errno.
    pub fn mount(&self) -> std::result::Result<(), i32> {
        if let Some(a) = &self.append {
            match self.mount_append(a) {
                // A kernel without lowerdir+ (before 6.5 only the create
                // step fails) or without the new mount API (5.2).
                Err(libc::EINVAL | libc::ENOSYS) if self.legacy.is_some() => {}
                r => return r,
            }
        }
        let Some(data) = &self.legacy else {
            return Err(libc::EINVAL);
        };
        let flags = if self.read_only { libc::MS_RDONLY } else { 0 };
        let overlay = Some(c"overlay");
        child::mount(overlay, &self.target, overlay, flags, Some(data))
    }

    /// fsopen, one fsconfig per parameter, create, fsmount, move_mount;
    /// the fds it opens are closed on every path.
    fn mount_append(&self, a: &AppendParams) -> std::result::Result<(), i32> {
        let fs = child::fsopen(c"overlay", libc::FSOPEN_CLOEXEC)?;
        let r = self.configure(fs, a).and_then(|()| {
            let attr = if self.read_only {
                sys::MountAttr::RDONLY
            } else {
                sys::MountAttr::empty()
            };
            child::fsmount(fs, libc::FSMOUNT_CLOEXEC, attr)
        });
        child::close(fs);
        let m = r?;
        // SAFETY: `m` is the mount fd fsmount returned, open until the
        // close below.
        let from = unsafe { BorrowedFd::borrow_raw(m) };
        let flags = libc::MOVE_MOUNT_F_EMPTY_PATH;
        let r = child::move_mount(from, c"", libc::AT_FDCWD, &self.target, flags);
        child::close(m);
        r
    }

    /// The context's parameters, then `FSCONFIG_CMD_CREATE`.
    fn configure(&self, fs: RawFd, a: &AppendParams) -> std::result::Result<(), i32> {
        for (key, val) in &a.strings {
            let set = libc::FSCONFIG_SET_STRING;
            child::fsconfig(fs, set, Some(key), Some(val), 0)?;
        }
        for flag in &a.flags {
            child::fsconfig(fs, libc::FSCONFIG_SET_FLAG, Some(flag), None, 0)?;
        }
        child::fsconfig(fs, libc::FSCONFIG_CMD_CREATE, None, None, 0)
    }

    /// The number of lower layers.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Whether the new mount API (`lowerdir+`) is prepared, and the
    /// classic `mount(2)` string (the fallback), for a step's description.
    pub fn methods(&self) -> (bool, bool) {
        (self.append.is_some(), self.legacy.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(layers: usize, len: usize) -> Overlay {
        Overlay::new()
            .lowers((0..layers).map(|i| format!("/{}{i:04}", "l".repeat(len))))
            .upper("/s/rw/upper")
            .work("/s/rw/work")
    }

    #[test]
    fn short_lists_prepare_both_methods() {
        let m = overlay(2, 10).prepare_child_mount("/s/rootfs").unwrap();
        assert_eq!(m.methods(), (true, true));
        assert_eq!(m.layers(), 2);
        let data = m.legacy.as_ref().unwrap().to_str().unwrap();
        assert_eq!(
            data,
            "lowerdir=/llllllllll0000:/llllllllll0001,upperdir=/s/rw/upper,workdir=/s/rw/work"
        );
        let a = m.append.as_ref().unwrap();
        let keys: Vec<_> = a.strings.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(
            keys,
            ["source", "lowerdir+", "lowerdir+", "upperdir", "workdir"]
        );
        assert!(!m.read_only);
    }

    #[test]
    fn a_list_over_a_page_is_append_only() {
        let m = overlay(200, 60).prepare_child_mount("/s/rootfs").unwrap();
        assert_eq!(m.methods(), (true, false));
    }

    #[test]
    fn a_path_over_fsconfig_s_limit_is_legacy_only() {
        let m = overlay(1, 300).prepare_child_mount("/s/rootfs").unwrap();
        assert_eq!(m.methods(), (false, true));
    }

    #[test]
    fn the_method_chosen_is_the_one_prepared() {
        let legacy = overlay(2, 10).method(MountMethod::Legacy);
        let m = legacy.prepare_child_mount("/s/rootfs").unwrap();
        assert_eq!(m.methods(), (false, true));
        let append = overlay(2, 10).method(MountMethod::Append);
        let m = append.prepare_child_mount("/s/rootfs").unwrap();
        assert_eq!(m.methods(), (true, false));
        let long = overlay(200, 60).method(MountMethod::Legacy);
        assert!(long.prepare_child_mount("/s/rootfs").is_err());
    }

    #[test]
    fn neither_is_an_error() {
        let e = overlay(20, 300)
            .prepare_child_mount("/s/rootfs")
            .unwrap_err();
        assert!(e.to_string().contains("20 layers"), "{e}");
    }

    mod faked {
        use berth_sys::fake::child::{install, Call, Recorder};

        use super::*;

        /// The fds of the Recorder: the context, then the mount.
        const FS: i32 = 1000;
        const MNT: i32 = 1001;

        fn run(m: &ChildOverlay, rec: &'static Recorder) -> std::result::Result<(), i32> {
            let _fake = install(rec);
            m.mount()
        }

        fn string(key: &str, value: &str) -> Call {
            Call::Fsconfig {
                fd: FS,
                cmd: libc::FSCONFIG_SET_STRING,
                key: Some(key.into()),
                value: Some(value.into()),
                aux: 0,
            }
        }

        fn create() -> Call {
            Call::Fsconfig {
                fd: FS,
                cmd: libc::FSCONFIG_CMD_CREATE,
                key: None,
                value: None,
                aux: 0,
            }
        }

        /// mount(2) of the option string.
        fn legacy(m: &ChildOverlay, flags: libc::c_ulong) -> Call {
            Call::Mount {
                source: Some("overlay".into()),
                target: "/s/rootfs".into(),
                fstype: Some("overlay".into()),
                flags,
                data: Some(m.legacy.as_ref().unwrap().to_str().unwrap().into()),
            }
        }

        #[test]
        fn lowerdir_plus_one_call_per_layer_then_the_mount_is_moved() {
            let m = overlay(2, 3)
                .volatile()
                .prepare_child_mount("/s/rootfs")
                .unwrap();
            let rec = Recorder::new().dir("/s/rootfs").leak();
            assert_eq!(run(&m, rec), Ok(()));
            assert_eq!(
                rec.calls(),
                [
                    Call::Fsopen {
                        fstype: "overlay".into(),
                        flags: libc::FSOPEN_CLOEXEC
                    },
                    string("source", "overlay"),
                    string("lowerdir+", "/lll0000"),
                    string("lowerdir+", "/lll0001"),
                    string("upperdir", "/s/rw/upper"),
                    string("workdir", "/s/rw/work"),
                    Call::Fsconfig {
                        fd: FS,
                        cmd: libc::FSCONFIG_SET_FLAG,
                        key: Some("volatile".into()),
                        value: None,
                        aux: 0
                    },
                    create(),
                    Call::Fsmount {
                        fd: FS,
                        flags: libc::FSMOUNT_CLOEXEC,
                        attr: sys::MountAttr::empty()
                    },
                    Call::Close(FS),
                    Call::MoveMount {
                        from_dir: MNT,
                        from_path: String::new(),
                        to_dir: libc::AT_FDCWD,
                        to_path: "/s/rootfs".into(),
                        flags: libc::MOVE_MOUNT_F_EMPTY_PATH
                    },
                    Call::Close(MNT),
                ]
            );
            assert_eq!(rec.records()[10].at.as_deref(), Some("/s/rootfs"));
            assert!(rec.open_fds().is_empty());
        }

        #[test]
        fn a_kernel_without_lowerdir_plus_falls_back_to_mount_2() {
            // Before 6.5 (no lowerdir+) the create step is EINVAL; before
            // 5.2 (no new mount API) fsopen is ENOSYS.
            let m = overlay(2, 3).prepare_child_mount("/s/rootfs").unwrap();
            let create_fails = Recorder::new()
                .dir("/s/rootfs")
                .fail_when(libc::EINVAL, |c| *c == create())
                .leak();
            assert_eq!(run(&m, create_fails), Ok(()));
            let calls = create_fails.calls();
            assert_eq!(
                calls[calls.len() - 3..],
                [create(), Call::Close(FS), legacy(&m, 0)]
            );
            assert!(create_fails.open_fds().is_empty());

            let no_api = Recorder::new()
                .dir("/s/rootfs")
                .fail_when(libc::ENOSYS, |c| matches!(c, Call::Fsopen { .. }))
                .leak();
            assert_eq!(run(&m, no_api), Ok(()));
            assert_eq!(no_api.calls()[1..], [legacy(&m, 0)]);
        }

        #[test]
        fn other_errors_and_append_only_lists_do_not_fall_back() {
            let m = overlay(2, 3).prepare_child_mount("/s/rootfs").unwrap();
            let eperm = Recorder::new()
                .dir("/s/rootfs")
                .fail_when(libc::EPERM, |c| matches!(c, Call::Fsmount { .. }))
                .leak();
            assert_eq!(run(&m, eperm), Err(libc::EPERM));
            assert_eq!(eperm.calls().last(), Some(&Call::Close(FS)));
            assert!(eperm.open_fds().is_empty());

            let long = overlay(200, 60).prepare_child_mount("/s/rootfs").unwrap();
            let einval = Recorder::new()
                .dir("/s/rootfs")
                .fail_when(libc::EINVAL, |c| *c == create())
                .leak();
            assert_eq!(run(&long, einval), Err(libc::EINVAL));
            assert_eq!(einval.calls().last(), Some(&Call::Close(FS)));
            assert!(!einval
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Mount { .. })));
        }

        #[test]
        fn without_an_upper_layer_the_mount_is_read_only() {
            let m = Overlay::new()
                .lowers(["/a", "/b"])
                .prepare_child_mount("/s/rootfs")
                .unwrap();
            let rec = Recorder::new().dir("/s/rootfs").leak();
            assert_eq!(run(&m, rec), Ok(()));
            let fsmount = Call::Fsmount {
                fd: FS,
                flags: libc::FSMOUNT_CLOEXEC,
                attr: sys::MountAttr::RDONLY,
            };
            assert!(rec.calls().contains(&fsmount));

            let legacy_only = Overlay::new()
                .lowers(["/a", "/b"])
                .method(MountMethod::Legacy)
                .prepare_child_mount("/s/rootfs")
                .unwrap();
            let rec = Recorder::new().dir("/s/rootfs").leak();
            assert_eq!(run(&legacy_only, rec), Ok(()));
            assert_eq!(rec.calls(), [legacy(&legacy_only, libc::MS_RDONLY)]);
        }
    }

    #[test]
    fn userxattr_is_a_flag_and_a_word() {
        let m = overlay(1, 3)
            .userxattr()
            .prepare_child_mount("/s/rootfs")
            .unwrap();
        let a = m.append.as_ref().unwrap();
        assert_eq!(a.flags, [c"userxattr"]);
        assert!(m
            .legacy
            .as_ref()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(",userxattr"));
    }
}
