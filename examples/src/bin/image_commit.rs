//! An image workflow on berth as a library: build, run, diff, commit, run.
//!
//! 1. Build an OCI image layout `base` from a busybox root filesystem
//!    (`berth_overlay::ImageBuilder`: one layer, an environment, a command)
//!    and import it into a layer store.
//! 2. Run a container from it that changes files: adds `/app/run.sh` and
//!    `/etc/app-version`, deletes `/etc/group`; its environment
//!    (`APP_MODE=prod`) and working directory (`/root`) are its own.
//! 3. Take its changes as an OCI layer ([`berth::Container::diff`]) and list
//!    them: new files, and a `.wh.` whiteout for the deleted one.
//! 4. Commit it ([`berth::Container::commit`]): a new image `app:v2` with
//!    the base's layer, the changes on top, and a config carrying the
//!    container's environment, working directory and command.
//! 5. Run the new image: the changes are there, and so are `APP_MODE` and
//!    the working directory.
//!
//! Everything is written below a temporary directory, removed at the end.
//! Run as root with a busybox root filesystem (its directory is only read):
//!
//! ```text
//! cargo run -p berth-examples --bin image_commit -- /path/to/busybox-rootfs
//! ```

use std::io::Read;
use std::path::Path;

use berth::{Compression, Container, ImageLayout, LayerStore, Rootfs, Stdio};
use berth_overlay::ImageBuilder;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The build step: idempotent, so that the committed image's default
/// command (this one) can run again.
const BUILD: &str = "mkdir -p /app && echo 2 > /etc/app-version && rm -f /etc/group \
    && echo 'echo \"app ($APP_MODE) version $(cat /etc/app-version) in $(pwd)\"' > /app/run.sh \
    && sh /app/run.sh";

/// What a container reads to show the changes (and the config) are there.
const SHOW: &str = "if test -e /app/run.sh; then sh /app/run.sh; else echo no /app/run.sh; fi; \
    test -e /etc/group && echo /etc/group present || echo /etc/group gone";

/// Run a container of `image` in `layout` to completion: its stdout.
fn run(store: &LayerStore, layout: &Path, image: &str, id: &str, cmd: Option<&str>) -> Res<String> {
    let mut b =
        Container::builder(id).rootfs(Rootfs::image(store, &ImageLayout::open(layout)?, image)?);
    if let Some(cmd) = cmd {
        b = b.command(["/bin/sh", "-c", cmd]);
    }
    let out = b.output()?;
    if !out.status.success() {
        return Err(format!(
            "{id}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn main() -> Res<()> {
    let rootfs = std::env::args()
        .nth(1)
        .ok_or("usage: image_commit ROOTFS (a busybox root filesystem)")?;
    let pid = std::process::id();
    let work = std::env::temp_dir().join(format!("berth-image-commit-{pid}"));
    std::fs::create_dir(&work)?;
    println!("working in {}", work.display());
    let result = demo(&rootfs, &work, pid);
    std::fs::remove_dir_all(&work)?;
    println!("removed {}", work.display());
    result
}

fn demo(rootfs: &str, work: &Path, pid: u32) -> Res<()> {
    // 1. The base image, and the store its layers are unpacked into.
    let (base, app) = (work.join("base"), work.join("app"));
    ImageBuilder::new("base")
        .layer_dir(rootfs)
        .env(["PATH=/bin:/sbin"])
        .cmd(["/bin/sh"])
        .write(&base)?;
    let store = LayerStore::open(work.join("store"))?;
    for line in run(&store, &base, "base", &format!("probe-{pid}"), Some(SHOW))?.lines() {
        println!("base image: {line}");
    }

    // 2. A container that changes files.
    let mut c = Container::builder(format!("build-{pid}"))
        .rootfs(Rootfs::image(&store, &ImageLayout::open(&base)?, "base")?)
        .env("APP_MODE", "prod")
        .current_dir("/root") // must exist: berth does not create it (runc does)
        .command(["/bin/sh", "-c", BUILD])
        .stdout(Stdio::Piped)
        .spawn()?;
    let mut said = String::new();
    c.stdout
        .take()
        .ok_or("no stdout")?
        .read_to_string(&mut said)?;
    println!("build: {} ({})", said.trim(), c.wait()?);

    // 3. Its changes as a layer.
    let mut layer = Vec::new();
    let blob = c.diff(&mut layer, Compression::None)?;
    println!("diff: {} bytes, {}", blob.size, blob.diff_id);
    for entry in tar::Archive::new(&layer[..]).entries()? {
        println!("diff: {}", entry?.path()?.display());
    }

    // 4. A new image from it.
    let img = c.commit(&store, &app, "app:v2")?;
    c.destroy()?;
    println!(
        "committed app:v2: {} layers, env {:?}, cwd {:?}",
        img.layers.len(),
        img.config.env,
        img.config.working_dir
    );

    // 5. The new image, with a command of ours and with its own.
    for line in run(&store, &app, "app:v2", &format!("show-{pid}"), Some(SHOW))?.lines() {
        println!("new image: {line}");
    }
    let out = run(&store, &app, "app:v2", &format!("default-{pid}"), None)?;
    println!("new image, default command: {}", out.trim());
    Ok(())
}
