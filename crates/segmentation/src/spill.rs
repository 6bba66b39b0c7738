//! A run's customer features parked in a temporary file between its two passes: the first
//! pass ranks the population while it writes the pages here, the second reads them back a
//! page at a time, so memory holds a few pages of features, never the tenant's population.
//!
//! The file is anonymous (in `TMPDIR`): the system removes it when the run drops it, whatever
//! way the run ends. Blocking I/O: call it from a blocking thread.

use prost::Message;
use rapport_proto::scoring::v1::{CustomerFeatures, ListCustomerFeaturesResponse};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};

/// Buffer of the file's reader and writer.
const BUFFER: usize = 1 << 20;

/// Errors of the spill file.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("spill file: {0}")]
    Io(#[from] std::io::Error),
    #[error("spill file: page {page} unreadable: {source}")]
    Decode {
        page: usize,
        source: prost::DecodeError,
    },
}

/// Pages of features being written.
pub struct SpillWriter {
    file: BufWriter<File>,
    pages: usize,
    /// The page being encoded, kept between pages (about 1 MB at 5,000 customers).
    bytes: Vec<u8>,
}

impl SpillWriter {
    /// A new, empty spill file.
    pub fn new() -> Result<SpillWriter, SpillError> {
        Ok(SpillWriter {
            file: BufWriter::with_capacity(BUFFER, tempfile::tempfile()?),
            pages: 0,
            bytes: Vec::new(),
        })
    }

    /// Appends a page: its length (four bytes, little-endian), then the page as a
    /// `ListCustomerFeaturesResponse`.
    pub fn push(&mut self, customers: Vec<CustomerFeatures>) -> Result<(), SpillError> {
        self.bytes.clear();
        ListCustomerFeaturesResponse {
            customers,
            next_after_customer_id: String::new(),
        }
        // A vector grows as it is written: encoding into one cannot run out of room.
        .encode_raw(&mut self.bytes);
        let len = u32::try_from(self.bytes.len())
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "page over 4 GiB"))?;
        self.file.write_all(&len.to_le_bytes())?;
        self.file.write_all(&self.bytes)?;
        self.pages += 1;
        Ok(())
    }

    /// The pages written, from the first.
    pub fn into_reader(self) -> Result<SpillReader, SpillError> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpillReader {
            file: BufReader::with_capacity(BUFFER, file),
            page: 0,
            pages: self.pages,
            bytes: self.bytes,
        })
    }
}

/// Pages of features read back in the order written.
pub struct SpillReader {
    file: BufReader<File>,
    page: usize,
    pages: usize,
    /// The page being decoded, kept between pages.
    bytes: Vec<u8>,
}

impl Iterator for SpillReader {
    type Item = Result<Vec<CustomerFeatures>, SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page == self.pages {
            return None;
        }
        let page = self.page;
        self.page += 1;
        let mut read = || {
            let mut len = [0u8; 4];
            self.file.read_exact(&mut len)?;
            self.bytes.resize(u32::from_le_bytes(len) as usize, 0);
            self.file.read_exact(&mut self.bytes)?;
            ListCustomerFeaturesResponse::decode(self.bytes.as_slice())
                .map(|p| p.customers)
                .map_err(|source| SpillError::Decode { page, source })
        };
        Some(read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: std::ops::Range<u32>) -> Vec<CustomerFeatures> {
        ids.map(|i| CustomerFeatures {
            customer_id: format!("c{i}"),
            spend: f64::from(i) / 3.0,
            recency_days: (i % 2 == 0).then_some(f64::from(i)),
            ..CustomerFeatures::default()
        })
        .collect()
    }

    #[test]
    fn pages_come_back_as_written() {
        let pages = [page(0..3), page(3..3), page(3..1_000)];
        let mut spill = SpillWriter::new().expect("a spill file");
        for p in &pages {
            spill.push(p.clone()).expect("a page written");
        }
        let read: Vec<Vec<CustomerFeatures>> = spill
            .into_reader()
            .expect("a reader")
            .collect::<Result<_, _>>()
            .expect("pages read");
        assert_eq!(read, pages);
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_short_run() {
        let mut spill = SpillWriter::new().expect("a spill file");
        spill.push(page(0..10)).expect("a page written");
        // A page counted but never written, as if the disk had filled.
        spill.pages += 1;
        let mut reader = spill.into_reader().expect("a reader");
        assert!(matches!(reader.next(), Some(Ok(p)) if p.len() == 10));
        assert!(matches!(reader.next(), Some(Err(SpillError::Io(_)))));
    }
}
