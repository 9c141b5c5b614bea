//! Records when and from which commit the binary was built, for the status page.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let built = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    println!("cargo:rustc-env=CLAWLOOPS_BUILD_UNIX={built}");

    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=CLAWLOOPS_GIT_COMMIT={commit}");

    // Rebuild the facts when the code or the checked-out commit changes, not on every build.
    for path in [
        "src",
        "../app/src",
        "../migrations",
        "../.git/HEAD",
        "../.git/refs/heads",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
