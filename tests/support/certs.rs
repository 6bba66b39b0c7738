//! Throwaway certificate authorities and certificates for TLS tests, made with the `openssl`
//! command in a temporary directory: ECDSA P-256, valid two days, servers named `localhost`
//! and 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate (PEM) and its private key (PEM).
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority that issues certificates into its directory.
pub struct Ca {
    dir: PathBuf,
    name: String,
    /// The CA's certificate (PEM): what clients or servers trust.
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    /// A new CA called `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let (cert, key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name} test CA"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &key,
                "-out",
                &cert,
            ],
        );
        Ca {
            dir: dir.to_owned(),
            name: name.to_owned(),
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }

    /// A certificate for `subject` (CN), good for servers at localhost and 127.0.0.1 and
    /// for clients, written as `<file>.pem` and `<file>.key`.
    pub fn issue(&self, subject: &str, file: &str) -> Pair {
        let (cert, key, csr, ext) = (
            format!("{file}.pem"),
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\n",
        )
        .expect("write the extensions");
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={subject}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let ca_cert = self.cert.display().to_string();
        let ca_key = self.key.display().to_string();
        let serial = format!("{}-ca.srl", self.name);
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_cert,
                "-CAkey",
                &ca_key,
                "-CAserial",
                &serial,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        );
        Pair {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}
