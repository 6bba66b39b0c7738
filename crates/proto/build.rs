//! Compiles `proto/` with protox (no protoc needed) into Rust code and a descriptor set.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "rapport/common/v1/common.proto",
    "rapport/ingestion/v1/ingestion.proto",
    "rapport/scoring/v1/scoring.proto",
    "rapport/segmentation/v1/segmentation.proto",
    "rapport/alerting/v1/alerting.proto",
    "rapport/keys/v1/keys.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(PROTOS, [&root])?;
    std::fs::write(out.join("rapport_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
