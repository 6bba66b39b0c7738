//! Rapport's gRPC contract: the code generated from `proto/`, one module per package.

/// Encoded `FileDescriptorSet` of every Rapport proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));

pub mod convert;

/// Types shared by every service.
pub mod common {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("rapport.common.v1");
    }
}

/// The ingestion service.
pub mod ingestion {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("rapport.ingestion.v1");
    }
}

/// The scoring service.
pub mod scoring {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("rapport.scoring.v1");
    }
}

/// The segmentation service.
pub mod segmentation {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("rapport.segmentation.v1");
    }
}

/// API keys managed by the platform (served by ingestion).
pub mod keys {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("rapport.keys.v1");
    }
}

/// The alerting service.
pub mod alerting {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("rapport.alerting.v1");
    }
}
