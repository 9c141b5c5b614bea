//! A throwaway certificate authority for the HTTPS tests (the `openssl` command line).

use std::path::Path;
use std::process::Command;

/// A certificate authority and, signed by it, a certificate for `domain` and every host under
/// it (`cert.pem`, `key.pem` in `dir`, readable by Traefik's user). Returns the
/// authority's certificate.
pub fn make(dir: &Path, domain: &str) -> reqwest::Certificate {
    use std::os::unix::fs::PermissionsExt;
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A new P-256 key, unencrypted.
    const NEW_KEY: [&str; 5] = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &NEW_KEY,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ClawLoops test CA",
            ],
        ]
        .concat(),
    );
    let subject = format!("/CN={domain}");
    openssl(
        &[
            &["req"][..],
            &NEW_KEY,
            &["-keyout", "key.pem", "-out", "host.csr", "-subj", &subject],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("host.ext"),
        format!(
            "subjectAltName=DNS:{domain},DNS:*.{domain}\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "host.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "host.ext",
    ]);
    for (name, mode) in [("cert.pem", 0o644), ("key.pem", 0o644), (".", 0o755)] {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode))
            .expect("readable by Traefik");
    }
    let pem = std::fs::read(dir.join("ca.pem")).expect("ca");
    reqwest::Certificate::from_pem(&pem).expect("ca certificate")
}
