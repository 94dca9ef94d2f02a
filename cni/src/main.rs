//! The `berth-cni` executable: a CNI plugin (see the crate docs).

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    let self_name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| berth_cni::PLUGIN_NAME.to_string());
    let out = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => berth_cni::execute(|k| std::env::var(k).ok(), &stdin, &self_name),
        Err(e) => berth_cni::Output {
            stdout: Some(
                berth_cni::Error::new(berth_cni::code::IO_FAILURE, format!("read stdin: {e}"))
                    .to_json(berth_cni::LATEST_VERSION),
            ),
            exit_code: 1,
        },
    };
    // Runtimes log a plugin's stderr: say what failed there too.
    if out.exit_code != 0 {
        if let Some(v) = &out.stdout {
            eprintln!(
                "{self_name}: CNI error {}: {}",
                v["code"],
                v["msg"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(v) = out.stdout {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    }
    std::process::exit(out.exit_code);
}
